package e2e

import (
	"net/http"
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// gwNet creates a Net and a subnet of account a through the v3 SDK and
// returns their ids.
func gwNet(t *testing.T, e *apitest.Env, a apitest.Account, ipRange, subnetRange string) (string, string) {
	t.Helper()
	c := e.V3(a)
	n, err := c.CreateNet(t.Context(), oscv3.CreateNetRequest{IpRange: ipRange})
	if err != nil {
		t.Fatalf("CreateNet: %v", err)
	}
	sn, err := c.CreateSubnet(t.Context(), oscv3.CreateSubnetRequest{NetId: n.Net.NetId, IpRange: subnetRange, SubregionName: ptr(apitest.Region + "a")})
	if err != nil {
		t.Fatalf("CreateSubnet: %v", err)
	}
	return n.Net.NetId, sn.Subnet.SubnetId
}

// TestNetGateways drives a public and a private subnet through the v3 SDK
// the way the provider's NAT configuration does: an internet service linked
// to the Net, a route table with a default route to it linked to the public
// subnet, a NAT service there, the main table's default route through the
// NAT; then a peering with another account's Net, DHCP options and tags,
// and the teardown in the order terraform destroys.
func TestNetGateways(t *testing.T) {
	e := apitest.Start(t)
	joe, titi, mkt := e.V3(e.Joe), e.V3(e.Titi), e.V3(e.Marketplace)
	ctx := t.Context()
	netID, pubID := gwNet(t, e, e.Joe, "10.0.0.0/16", "10.0.0.0/24")
	titiNet, _ := gwNet(t, e, e.Titi, "10.20.0.0/16", "10.20.0.0/24")

	igw, err := joe.CreateInternetService(ctx, oscv3.CreateInternetServiceRequest{})
	if err != nil {
		t.Fatalf("CreateInternetService: %v", err)
	}
	igwID := igw.InternetService.InternetServiceId
	if _, err := joe.LinkInternetService(ctx, oscv3.LinkInternetServiceRequest{InternetServiceId: igwID, NetId: netID}); err != nil {
		t.Fatalf("LinkInternetService: %v", err)
	}
	igws, err := joe.ReadInternetServices(ctx, oscv3.ReadInternetServicesRequest{Filters: &oscv3.FiltersInternetService{LinkNetIds: &[]string{netID}}})
	if err != nil || len(deref(igws.InternetServices)) != 1 || (*igws.InternetServices)[0].State != "available" {
		t.Fatalf("ReadInternetServices: %v %+v", err, igws)
	}

	main, err := joe.ReadRouteTables(ctx, oscv3.ReadRouteTablesRequest{Filters: &oscv3.FiltersRouteTable{NetIds: &[]string{netID}, LinkRouteTableMain: ptr(true)}})
	if err != nil || len(deref(main.RouteTables)) != 1 {
		t.Fatalf("main route table: %v %+v", err, main)
	}
	mainRT := (*main.RouteTables)[0]
	if !mainRT.LinkRouteTables[0].Main || mainRT.Routes[0].CreationMethod != "CreateRouteTable" || deref(mainRT.Routes[0].GatewayId) != "local" {
		t.Errorf("main route table: %+v", mainRT)
	}
	rt, err := joe.CreateRouteTable(ctx, oscv3.CreateRouteTableRequest{NetId: netID})
	if err != nil {
		t.Fatalf("CreateRouteTable: %v", err)
	}
	rtID := rt.RouteTable.RouteTableId
	cr, err := joe.CreateRoute(ctx, oscv3.CreateRouteRequest{RouteTableId: rtID, DestinationIpRange: "0.0.0.0/0", GatewayId: &igwID})
	if err != nil {
		t.Fatalf("CreateRoute: %v", err)
	}
	if r := cr.RouteTable.Routes[1]; r.State != "active" || deref(r.GatewayId) != igwID || r.CreationMethod != "CreateRoute" {
		t.Errorf("route to the internet service: %+v", r)
	}
	link, err := joe.LinkRouteTable(ctx, oscv3.LinkRouteTableRequest{RouteTableId: rtID, SubnetId: pubID})
	if err != nil {
		t.Fatalf("LinkRouteTable: %v", err)
	}

	ip, err := joe.CreatePublicIp(ctx, oscv3.CreatePublicIpRequest{})
	if err != nil {
		t.Fatalf("CreatePublicIp: %v", err)
	}
	nat, err := joe.CreateNatService(ctx, oscv3.CreateNatServiceRequest{SubnetId: pubID, PublicIpId: ip.PublicIp.PublicIpId})
	if err != nil {
		t.Fatalf("CreateNatService: %v", err)
	}
	natID := nat.NatService.NatServiceId
	if nat.NatService.State != "available" || nat.NatService.NetId != netID || len(nat.NatService.PublicIps) != 1 {
		t.Errorf("NAT service: %+v", nat.NatService)
	}
	if _, err := joe.CreateRoute(ctx, oscv3.CreateRouteRequest{RouteTableId: mainRT.RouteTableId, DestinationIpRange: "0.0.0.0/0", NatServiceId: &natID}); err != nil {
		t.Fatalf("CreateRoute to the NAT: %v", err)
	}
	_, err = joe.UnlinkInternetService(ctx, oscv3.UnlinkInternetServiceRequest{InternetServiceId: igwID, NetId: netID})
	wantCode(t, "unlink the internet service of a Net with a NAT", err, http.StatusConflict, "1018")
	_, err = joe.DeleteRouteTable(ctx, oscv3.DeleteRouteTableRequest{RouteTableId: mainRT.RouteTableId})
	wantCode(t, "delete the main route table", err, http.StatusConflict, "9066")
	_, err = joe.CreateNatService(ctx, oscv3.CreateNatServiceRequest{SubnetId: pubID, PublicIpId: ip.PublicIp.PublicIpId})
	wantCode(t, "a second NAT service", err, http.StatusConflict, "9031")

	// Another account sees none of it and changes nothing.
	trt, err := titi.ReadRouteTables(ctx, oscv3.ReadRouteTablesRequest{Filters: &oscv3.FiltersRouteTable{RouteTableIds: &[]string{rtID, mainRT.RouteTableId}}})
	if err != nil || len(deref(trt.RouteTables)) != 0 {
		t.Errorf("titi reads joe's route tables: %v %+v", err, trt)
	}
	_, err = titi.DeleteInternetService(ctx, oscv3.DeleteInternetServiceRequest{InternetServiceId: igwID})
	wantCode(t, "titi deletes joe's internet service", err, http.StatusBadRequest, "5019")
	_, err = titi.DeleteNatService(ctx, oscv3.DeleteNatServiceRequest{NatServiceId: natID})
	wantCode(t, "titi deletes joe's NAT", err, http.StatusBadRequest, "5032")
	_, err = titi.DeleteRoute(ctx, oscv3.DeleteRouteRequest{RouteTableId: mainRT.RouteTableId, DestinationIpRange: "0.0.0.0/0"})
	wantCode(t, "titi deletes joe's route", err, http.StatusBadRequest, "5046")

	// A peering with titi's Net: titi sees it and accepts; marketplace does
	// not see it.
	pcx, err := joe.CreateNetPeering(ctx, oscv3.CreateNetPeeringRequest{SourceNetId: netID, AccepterNetId: titiNet, AccepterOwnerId: &e.Titi.AccountID})
	if err != nil {
		t.Fatalf("CreateNetPeering: %v", err)
	}
	pcxID := pcx.NetPeering.NetPeeringId
	if pcx.NetPeering.State.Name != "pending-acceptance" || pcx.NetPeering.ExpirationDate == nil {
		t.Errorf("new peering: %+v", pcx.NetPeering)
	}
	if r, err := mkt.ReadNetPeerings(ctx, oscv3.ReadNetPeeringsRequest{}); err != nil || len(deref(r.NetPeerings)) != 0 {
		t.Errorf("marketplace reads peerings: %v %+v", err, r)
	}
	acc, err := titi.AcceptNetPeering(ctx, oscv3.AcceptNetPeeringRequest{NetPeeringId: pcxID})
	if err != nil {
		t.Fatalf("titi AcceptNetPeering: %v", err)
	}
	if acc.NetPeering.State.Name != "active" {
		t.Errorf("accepted peering: %+v", acc.NetPeering.State)
	}
	if _, err := joe.CreateRoute(ctx, oscv3.CreateRouteRequest{RouteTableId: rtID, DestinationIpRange: "10.20.0.0/16", NetPeeringId: &pcxID}); err != nil {
		t.Fatalf("CreateRoute to the peering: %v", err)
	}
	byPcx, err := joe.ReadRouteTables(ctx, oscv3.ReadRouteTablesRequest{Filters: &oscv3.FiltersRouteTable{RouteNetPeeringIds: &[]string{pcxID}, RouteStates: &[]string{"active"}}})
	if err != nil || len(deref(byPcx.RouteTables)) != 1 {
		t.Errorf("route tables through the peering: %v %+v", err, byPcx)
	}

	// DHCP options and tags.
	dopt, err := joe.CreateDhcpOptions(ctx, oscv3.CreateDhcpOptionsRequest{DomainName: ptr("example.org"), NtpServers: &[]string{"10.0.0.123"}})
	if err != nil {
		t.Fatalf("CreateDhcpOptions: %v", err)
	}
	doptID := deref(dopt.DhcpOptionsSet.DhcpOptionsSetId)
	if got := deref(dopt.DhcpOptionsSet.DomainNameServers); len(got) != 1 || got[0] != "OutscaleProvidedDNS" {
		t.Errorf("DomainNameServers of a new set: %v", got)
	}
	def, err := joe.ReadDhcpOptions(ctx, oscv3.ReadDhcpOptionsRequest{Filters: &oscv3.FiltersDhcpOptions{Default: ptr(true)}})
	if err != nil || len(deref(def.DhcpOptionsSets)) != 1 {
		t.Errorf("default DHCP options: %v %+v", err, def)
	}
	ids := []string{igwID, rtID, natID, pcxID, doptID}
	if _, err := joe.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: ids, Tags: []oscv3.ResourceTag{{Key: "name", Value: "e2e"}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	tags, err := joe.ReadTags(ctx, oscv3.ReadTagsRequest{Filters: &oscv3.FiltersTag{Keys: &[]string{"name"}}})
	if err != nil || len(deref(tags.Tags)) != len(ids) {
		t.Errorf("ReadTags: %v %+v", err, tags)
	}

	// Teardown, in terraform's destroy order.
	steps := []struct {
		what string
		do   func() error
	}{
		{"DeleteRoute", func() error {
			_, err := joe.DeleteRoute(ctx, oscv3.DeleteRouteRequest{RouteTableId: mainRT.RouteTableId, DestinationIpRange: "0.0.0.0/0"})
			return err
		}},
		{"DeleteNatService", func() error {
			_, err := joe.DeleteNatService(ctx, oscv3.DeleteNatServiceRequest{NatServiceId: natID})
			return err
		}},
		{"DeleteNetPeering", func() error {
			_, err := joe.DeleteNetPeering(ctx, oscv3.DeleteNetPeeringRequest{NetPeeringId: pcxID})
			return err
		}},
		{"UnlinkRouteTable", func() error {
			_, err := joe.UnlinkRouteTable(ctx, oscv3.UnlinkRouteTableRequest{LinkRouteTableId: deref(link.LinkRouteTableId)})
			return err
		}},
		{"DeleteRouteTable", func() error {
			_, err := joe.DeleteRouteTable(ctx, oscv3.DeleteRouteTableRequest{RouteTableId: rtID})
			return err
		}},
		{"UnlinkInternetService", func() error {
			_, err := joe.UnlinkInternetService(ctx, oscv3.UnlinkInternetServiceRequest{InternetServiceId: igwID, NetId: netID})
			return err
		}},
		{"DeleteInternetService", func() error {
			_, err := joe.DeleteInternetService(ctx, oscv3.DeleteInternetServiceRequest{InternetServiceId: igwID})
			return err
		}},
		{"DeleteDhcpOptions", func() error {
			_, err := joe.DeleteDhcpOptions(ctx, oscv3.DeleteDhcpOptionsRequest{DhcpOptionsSetId: doptID})
			return err
		}},
		{"DeletePublicIp", func() error {
			_, err := joe.DeletePublicIp(ctx, oscv3.DeletePublicIpRequest{PublicIpId: &ip.PublicIp.PublicIpId})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
	}
	if r, err := joe.ReadNetPeerings(ctx, oscv3.ReadNetPeeringsRequest{}); err != nil || len(deref(r.NetPeerings)) != 1 || (*r.NetPeerings)[0].State.Name != "deleted" {
		t.Errorf("peering after delete: %v %+v", err, r)
	}
	if r, err := joe.ReadInternetServices(ctx, oscv3.ReadInternetServicesRequest{}); err != nil || len(deref(r.InternetServices)) != 0 {
		t.Errorf("internet services left: %v %+v", err, r)
	}
}
