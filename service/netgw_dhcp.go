package service

import (
	"context"
	"net/netip"

	"github.com/omiproject/omi"
)

// DHCP options sets. Every account has a default set, which new Nets use:
// its id is derived from the account (as the default Net's
// DhcpOptionsSetId always was), and it exists without a record until
// something writes to it (a Net created, tags); reads show it either way.

// maxDhcpServers caps each server list (the cloud's DHCP servers hand out
// four of each at most).
const maxDhcpServers = 4

// defaultDhcpID is the id of the account's default DHCP options set.
func defaultDhcpID(account string) string { return derivedID(omi.PrefixDhcpOptions, account) }

// dhcpDomainName is the domain name of a set created without one: the
// region's internal domain, as the real cloud's recorded sets show
// ("eu-west-2.compute.internal").
func (s *Service) dhcpDomainName() string { return s.cfg.Region + ".compute.internal" }

// defaultDhcp is the account's default set as it is before any change.
func (s *Service) defaultDhcp(account string) *omi.DhcpOptionsSet {
	return &omi.DhcpOptionsSet{AccountId: account, Default: true, DhcpOptionsSetId: defaultDhcpID(account),
		DomainName: s.dhcpDomainName(), DomainNameServers: []string{omi.OutscaleProvidedDNS},
		LogServers: []string{}, NtpServers: []string{}, Tags: []omi.Tag{}}
}

// ensureDefaultDhcp stores the account's default set if it has no record
// yet, and returns its id.
func (s *Service) ensureDefaultDhcp(tx omi.Tx, account string) (string, error) {
	id := defaultDhcpID(account)
	_, err := tx.Get(omi.KindDhcpOptions, id)
	if err == nil {
		return id, nil
	}
	if !isNotFound(err) {
		return "", err
	}
	return id, omi.Insert(tx, s.defaultDhcp(account))
}

// materializeDefaultDhcp stores the caller's default set when a tag change
// names it before it has a record.
func materializeDefaultDhcp(s *Service, tx omi.Tx, c *omi.Caller, id string) (omi.Tagged, error) {
	if id != defaultDhcpID(c.AccountID()) {
		return nil, nil
	}
	if _, err := s.ensureDefaultDhcp(tx, c.AccountID()); err != nil {
		return nil, err
	}
	return omi.Get[omi.DhcpOptionsSet](tx, id)
}

// ownDhcpOptions loads a DHCP options set the caller owns, the default one
// included.
func (s *Service) ownDhcpOptions(tx omi.Tx, c *omi.Caller, id string) (*omi.DhcpOptionsSet, error) {
	d, err := omi.Get[omi.DhcpOptionsSet](tx, id)
	if isNotFound(err) && id == defaultDhcpID(c.AccountID()) {
		return s.defaultDhcp(c.AccountID()), nil
	}
	if isNotFound(err) || (err == nil && d.AccountId != c.AccountID()) {
		return nil, dhcpNotFound(id)
	}
	return d, err
}

// DhcpOptionsForNet resolves the DhcpOptionsSetId of UpdateNet: "default"
// names the account's default set; any other id must be one of the
// caller's sets. It returns the id to store on the Net.
func (s *Service) DhcpOptionsForNet(tx omi.Tx, c *omi.Caller, id string) (string, error) {
	if id == "default" || id == defaultDhcpID(c.AccountID()) {
		return s.ensureDefaultDhcp(tx, c.AccountID())
	}
	d, err := s.ownDhcpOptions(tx, c, id)
	if err != nil {
		return "", err
	}
	return d.DhcpOptionsSetId, nil
}

type CreateDhcpOptionsRequest struct {
	Base
	DomainName        string   `json:"DomainName"`
	DomainNameServers []string `json:"DomainNameServers"`
	LogServers        []string `json:"LogServers"`
	NtpServers        []string `json:"NtpServers"`
}
type CreateDhcpOptionsResponse struct {
	DhcpOptionsSet *omi.DhcpOptionsSet `json:"DhcpOptionsSet"`
}

// validDomainName accepts the DomainName of a set: up to 255 letters,
// digits, dots, dashes and spaces (several domains are space-separated).
func validDomainName(n string) bool {
	if n == "" || len(n) > 255 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ' ') {
			return false
		}
	}
	return true
}

// checkServers validates a server list: at most four IPv4 addresses, or,
// for the domain name servers, OutscaleProvidedDNS.
func checkServers(name string, list []string, dns bool) error {
	if len(list) > maxDhcpServers {
		return omi.Invalid(omi.CodeInvalidValue, "%s takes at most %d servers", name, maxDhcpServers)
	}
	seen := map[string]bool{}
	for _, v := range list {
		if dns && v == omi.OutscaleProvidedDNS {
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return omi.Invalid(codeInvalidIPAddress, "%s: %q is not an IPv4 address", name, v)
		}
		if seen[v] {
			return omi.Invalid(omi.CodeInvalidValue, "%s: %s is given twice", name, v)
		}
		seen[v] = true
	}
	return nil
}

// CreateDhcpOptions creates a set of DHCP options. At least one option is
// needed; those left out get the cloud's defaults (the region's internal
// domain, the cloud's DNS, no NTP or log servers).
func (s *Service) CreateDhcpOptions(ctx context.Context, c *omi.Caller, in *CreateDhcpOptionsRequest) (*CreateDhcpOptionsResponse, error) {
	if in.DomainName == "" && len(in.DomainNameServers) == 0 && len(in.LogServers) == 0 && len(in.NtpServers) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "give at least one of DomainName, DomainNameServers, LogServers and NtpServers")
	}
	if in.DomainName != "" && !validDomainName(in.DomainName) {
		return nil, omi.Invalid(omi.CodeInvalidValue, "DomainName %q is not a domain name", in.DomainName)
	}
	if err := checkServers("DomainNameServers", in.DomainNameServers, true); err != nil {
		return nil, err
	}
	if err := checkServers("LogServers", in.LogServers, false); err != nil {
		return nil, err
	}
	if err := checkServers("NtpServers", in.NtpServers, false); err != nil {
		return nil, err
	}
	d := &omi.DhcpOptionsSet{AccountId: c.AccountID(), DhcpOptionsSetId: omi.NewID(omi.PrefixDhcpOptions),
		DomainName: in.DomainName, DomainNameServers: append([]string{}, in.DomainNameServers...),
		LogServers: append([]string{}, in.LogServers...), NtpServers: append([]string{}, in.NtpServers...), Tags: []omi.Tag{}}
	if d.DomainName == "" {
		d.DomainName = s.dhcpDomainName()
	}
	if len(d.DomainNameServers) == 0 {
		d.DomainNameServers = []string{omi.OutscaleProvidedDNS}
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		return insertNew(tx, d, func() { d.DhcpOptionsSetId = omi.NewID(omi.PrefixDhcpOptions) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateDhcpOptionsResponse{DhcpOptionsSet: d}, nil
}

type DeleteDhcpOptionsRequest struct {
	Base
	DhcpOptionsSetId string `json:"DhcpOptionsSetId"`
}
type DeleteDhcpOptionsResponse struct{}

// DeleteDhcpOptions deletes a set no Net uses. The default set stays.
func (s *Service) DeleteDhcpOptions(ctx context.Context, c *omi.Caller, in *DeleteDhcpOptionsRequest) (*DeleteDhcpOptionsResponse, error) {
	if err := required("DhcpOptionsSetId", in.DhcpOptionsSetId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		d, err := s.ownDhcpOptions(tx, c, in.DhcpOptionsSetId)
		if err != nil {
			return err
		}
		if d.Default {
			return omi.Invalid(omi.CodeInvalidValue, "The default DHCP options set '%s' cannot be deleted.", d.DhcpOptionsSetId)
		}
		var user string
		err = omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(n *omi.Net) (bool, error) {
			if n.DhcpOptionsSetId == d.DhcpOptionsSetId {
				user = n.NetId
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if user != "" {
			return omi.Conflict(codeNetAssociated, "The DHCP options set '%s' is used by the Net '%s': give the Net another set first.", d.DhcpOptionsSetId, user)
		}
		return retire(tx, omi.KindDhcpOptions, d.DhcpOptionsSetId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteDhcpOptionsResponse{}, nil
}

type FiltersDhcpOptions struct {
	tagFilter
	Default           *bool    `json:"Default"`
	DhcpOptionsSetIds []string `json:"DhcpOptionsSetIds"`
	DomainNameServers []string `json:"DomainNameServers"`
	DomainNames       []string `json:"DomainNames"`
	LogServers        []string `json:"LogServers"`
	NtpServers        []string `json:"NtpServers"`
}

func (f *FiltersDhcpOptions) match(d *omi.DhcpOptionsSet) bool {
	return (f.Default == nil || *f.Default == d.Default) && anyOf(f.DhcpOptionsSetIds, d.DhcpOptionsSetId) &&
		intersects(f.DomainNameServers, d.DomainNameServers) && anyOf(f.DomainNames, d.DomainName) &&
		intersects(f.LogServers, d.LogServers) && intersects(f.NtpServers, d.NtpServers) && f.tagFilter.match(d.Tags)
}

type ReadDhcpOptionsRequest struct {
	Base
	Paging
	Filters *FiltersDhcpOptions `json:"Filters"`
}
type ReadDhcpOptionsResponse struct {
	DhcpOptionsSets []*omi.DhcpOptionsSet `json:"DhcpOptionsSets"`
	NextPageToken   string                `json:"NextPageToken,omitempty"`
}

// ReadDhcpOptions lists the caller's DHCP options sets, the default one
// included.
func (s *Service) ReadDhcpOptions(ctx context.Context, c *omi.Caller, in *ReadDhcpOptionsRequest) (*ReadDhcpOptionsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersDhcpOptions{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadDhcpOptionsResponse{DhcpOptionsSets: []*omi.DhcpOptionsSet{}}, nil
	}
	var all []*omi.DhcpOptionsSet
	err := s.view(ctx, func(tx omi.Tx) error {
		def := defaultDhcpID(c.AccountID())
		stored := false
		err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.DhcpOptionsSetIds}, func(d *omi.DhcpOptionsSet) (bool, error) {
			stored = stored || d.DhcpOptionsSetId == def
			d.Normalize()
			if f.match(d) {
				all = append(all, d)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if d := s.defaultDhcp(c.AccountID()); !stored && f.match(d) {
			all = append(all, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortByID(all, func(d *omi.DhcpOptionsSet) string { return d.DhcpOptionsSetId })
	out, next, err := page(all, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadDhcpOptionsResponse{DhcpOptionsSets: nonNil(out), NextPageToken: next}, nil
}
