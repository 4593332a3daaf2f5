package e2e

import (
	"net/http"
	"testing"

	oscv2 "github.com/outscale/osc-sdk-go/v2"
	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// The public calls answer without credentials, with the region's facts.
func TestPublicCallsWithoutCredentials(t *testing.T) {
	e := apitest.Start(t)
	t.Run("v2", func(t *testing.T) {
		c, ctx := e.V2Anonymous()
		regions, _, err := c.RegionApi.ReadRegions(ctx).ReadRegionsRequest(oscv2.ReadRegionsRequest{}).Execute()
		if err != nil {
			t.Fatalf("ReadRegions: %v", err)
		}
		found := false
		for _, r := range regions.GetRegions() {
			found = found || r.GetRegionName() == apitest.Region
		}
		if !found {
			t.Errorf("ReadRegions = %+v, want %s listed", regions.GetRegions(), apitest.Region)
		}
		types, _, err := c.VmApi.ReadVmTypes(ctx).ReadVmTypesRequest(oscv2.ReadVmTypesRequest{}).Execute()
		if err != nil {
			t.Fatalf("ReadVmTypes: %v", err)
		}
		if len(types.GetVmTypes()) == 0 {
			t.Errorf("ReadVmTypes returned no type")
		}
		for _, vt := range types.GetVmTypes() {
			if vt.GetVmTypeName() == "" || vt.GetVcoreCount() <= 0 || vt.GetMemorySize() <= 0 {
				t.Errorf("VM type %+v lacks name, cores or memory", vt)
				break
			}
		}
		pts, _, err := c.ProductTypeApi.ReadProductTypes(ctx).ReadProductTypesRequest(oscv2.ReadProductTypesRequest{}).Execute()
		if err != nil {
			t.Fatalf("ReadProductTypes: %v", err)
		}
		linux := false
		for _, p := range pts.GetProductTypes() {
			linux = linux || (p.GetProductTypeId() == "0001" && p.GetDescription() != "")
		}
		if !linux {
			t.Errorf("ReadProductTypes = %+v, want 0001 (Linux)", pts.GetProductTypes())
		}
		// A call that needs credentials is refused without them.
		_, _, err = c.AccountApi.ReadAccounts(ctx).ReadAccountsRequest(oscv2.ReadAccountsRequest{}).Execute()
		wantCode(t, "ReadAccounts without credentials", err, http.StatusUnauthorized, "7")
	})
	t.Run("v3", func(t *testing.T) {
		c := e.V3Anonymous()
		regions, err := c.ReadRegions(ctxTimeout(t), oscv3.ReadRegionsRequest{})
		if err != nil {
			t.Fatalf("ReadRegions: %v", err)
		}
		if regions.Regions == nil || len(*regions.Regions) == 0 || *(*regions.Regions)[0].RegionName != apitest.Region {
			t.Errorf("ReadRegions = %+v, want %s first", regions.Regions, apitest.Region)
		}
		types, err := c.ReadVmTypes(ctxTimeout(t), oscv3.ReadVmTypesRequest{Filters: &oscv3.FiltersVmType{VmTypeNames: &[]string{"tinav5.c2r4p2"}}})
		if err != nil {
			t.Fatalf("ReadVmTypes: %v", err)
		}
		if types.VmTypes == nil || len(*types.VmTypes) != 1 {
			t.Fatalf("ReadVmTypes filtered on tinav5.c2r4p2 = %+v, want exactly it", types.VmTypes)
		}
		vt := (*types.VmTypes)[0]
		if vt.VcoreCount == nil || *vt.VcoreCount != 2 || vt.MemorySize == nil || *vt.MemorySize != 4 {
			t.Errorf("tinav5.c2r4p2 = %d cores %v GiB, want 2 cores 4 GiB", deref(vt.VcoreCount), deref(vt.MemorySize))
		}
		pts, err := c.ReadProductTypes(ctxTimeout(t), oscv3.ReadProductTypesRequest{})
		if err != nil {
			t.Fatalf("ReadProductTypes: %v", err)
		}
		if pts.ProductTypes == nil || len(*pts.ProductTypes) == 0 {
			t.Errorf("ReadProductTypes returned nothing")
		}
		_, err = c.ReadImages(ctxTimeout(t), oscv3.ReadImagesRequest{})
		if !oscv3.IsAuthError(err) {
			t.Errorf("ReadImages without credentials: %v, want an auth error", err)
		}
	})
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// The v2 SDK's documented style omits the request struct on calls without
// arguments; the SDK then sends the body "null".
func TestV2CallsWithoutRequestBody(t *testing.T) {
	e := apitest.Start(t)
	c, ctx := e.V2(e.Joe)
	accts, _, err := c.AccountApi.ReadAccounts(ctx).Execute()
	if err != nil {
		t.Fatalf("ReadAccounts without request struct: %v", err)
	}
	if len(accts.GetAccounts()) != 1 || accts.GetAccounts()[0].GetAccountId() != e.Joe.AccountID {
		t.Errorf("ReadAccounts = %+v, want joe", accts.GetAccounts())
	}
	anon, actx := e.V2Anonymous()
	if _, _, err := anon.RegionApi.ReadRegions(actx).Execute(); err != nil {
		t.Errorf("ReadRegions without request struct: %v", err)
	}
}

func TestSubregionsAndAccounts(t *testing.T) {
	e := apitest.Start(t)
	t.Run("v2", func(t *testing.T) {
		c, ctx := e.V2(e.Titi)
		sr, _, err := c.SubregionApi.ReadSubregions(ctx).ReadSubregionsRequest(oscv2.ReadSubregionsRequest{}).Execute()
		if err != nil {
			t.Fatalf("ReadSubregions: %v", err)
		}
		names := map[string]string{}
		for _, s := range sr.GetSubregions() {
			names[s.GetSubregionName()] = s.GetRegionName()
		}
		if names["eu-west-2a"] != apitest.Region || names["eu-west-2b"] != apitest.Region {
			t.Errorf("ReadSubregions = %v, want eu-west-2a and eu-west-2b in %s", names, apitest.Region)
		}
		accts, _, err := c.AccountApi.ReadAccounts(ctx).ReadAccountsRequest(oscv2.ReadAccountsRequest{}).Execute()
		if err != nil {
			t.Fatalf("ReadAccounts: %v", err)
		}
		if len(accts.GetAccounts()) != 1 || accts.GetAccounts()[0].GetAccountId() != e.Titi.AccountID || accts.GetAccounts()[0].GetEmail() != e.Titi.Email {
			t.Errorf("ReadAccounts as titi = %+v, want only titi (%s)", accts.GetAccounts(), e.Titi.AccountID)
		}
	})
	t.Run("v3", func(t *testing.T) {
		c := e.V3(e.Joe)
		sr, err := c.ReadSubregions(ctxTimeout(t), oscv3.ReadSubregionsRequest{Filters: &oscv3.FiltersSubregion{SubregionNames: &[]string{"eu-west-2b"}}})
		if err != nil {
			t.Fatalf("ReadSubregions: %v", err)
		}
		if sr.Subregions == nil || len(*sr.Subregions) != 1 || deref((*sr.Subregions)[0].SubregionName) != "eu-west-2b" {
			t.Errorf("ReadSubregions filtered on eu-west-2b = %+v", sr.Subregions)
		}
		accts, err := c.ReadAccounts(ctxTimeout(t), oscv3.ReadAccountsRequest{})
		if err != nil {
			t.Fatalf("ReadAccounts: %v", err)
		}
		if accts.Accounts == nil || len(*accts.Accounts) != 1 || deref((*accts.Accounts)[0].AccountId) != e.Joe.AccountID {
			t.Errorf("ReadAccounts as joe = %+v, want only joe", accts.Accounts)
		}
	})
}

// readAccountID calls ReadAccounts with the given keys through the v3 SDK.
func readAccountID(t *testing.T, e *apitest.Env, ak, sk string) (string, error) {
	t.Helper()
	r, err := e.V3(apitest.Account{Alias: "key " + ak, AccessKey: ak, SecretKey: sk}).ReadAccounts(ctxTimeout(t), oscv3.ReadAccountsRequest{})
	if err != nil {
		return "", err
	}
	if r.Accounts == nil || len(*r.Accounts) != 1 {
		t.Fatalf("ReadAccounts = %+v, want one account", r.Accounts)
	}
	return deref((*r.Accounts)[0].AccountId), nil
}

func TestAccessKeyLifecycleV2(t *testing.T) {
	e := apitest.Start(t)
	c, ctx := e.V2(e.Joe)
	created, _, err := c.AccessKeyApi.CreateAccessKey(ctx).CreateAccessKeyRequest(oscv2.CreateAccessKeyRequest{Tag: ptr("e2e")}).Execute()
	if err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	k := created.GetAccessKey()
	ak, sk := k.GetAccessKeyId(), k.GetSecretKey()
	if len(ak) != 20 || len(sk) != 40 || k.GetState() != "ACTIVE" {
		t.Fatalf("new key %q/%d chars state %q, want 20/40 chars ACTIVE", ak, len(sk), k.GetState())
	}
	if id, err := readAccountID(t, e, ak, sk); err != nil || id != e.Joe.AccountID {
		t.Fatalf("new key: ReadAccounts = %q, %v; want joe's account", id, err)
	}

	_, _, err = c.AccessKeyApi.UpdateAccessKey(ctx).UpdateAccessKeyRequest(oscv2.UpdateAccessKeyRequest{AccessKeyId: ak, State: ptr("INACTIVE")}).Execute()
	if err != nil {
		t.Fatalf("UpdateAccessKey INACTIVE: %v", err)
	}
	_, err = readAccountID(t, e, ak, sk)
	wantCode(t, "call with the deactivated key", err, http.StatusUnauthorized, "1")

	list, _, err := c.AccessKeyApi.ReadAccessKeys(ctx).ReadAccessKeysRequest(oscv2.ReadAccessKeysRequest{
		Filters: &oscv2.FiltersAccessKeys{AccessKeyIds: &[]string{ak}}}).Execute()
	if err != nil {
		t.Fatalf("ReadAccessKeys: %v", err)
	}
	if len(list.GetAccessKeys()) != 1 || list.GetAccessKeys()[0].GetState() != "INACTIVE" {
		t.Errorf("ReadAccessKeys = %+v, want the key INACTIVE", list.GetAccessKeys())
	}
	for _, lk := range list.GetAccessKeys() {
		if lk.GetTag() != "e2e" {
			t.Errorf("key tag = %q, want e2e", lk.GetTag())
		}
	}

	_, _, err = c.AccessKeyApi.DeleteAccessKey(ctx).DeleteAccessKeyRequest(oscv2.DeleteAccessKeyRequest{AccessKeyId: ak}).Execute()
	if err != nil {
		t.Fatalf("DeleteAccessKey: %v", err)
	}
	list, _, err = c.AccessKeyApi.ReadAccessKeys(ctx).ReadAccessKeysRequest(oscv2.ReadAccessKeysRequest{}).Execute()
	if err != nil {
		t.Fatalf("ReadAccessKeys: %v", err)
	}
	for _, lk := range list.GetAccessKeys() {
		if lk.GetAccessKeyId() == ak {
			t.Errorf("deleted key %s still listed", ak)
		}
	}
	if len(list.GetAccessKeys()) != 1 || list.GetAccessKeys()[0].GetAccessKeyId() != e.Joe.AccessKey {
		t.Errorf("joe's keys after delete = %+v, want only the configured one", list.GetAccessKeys())
	}
	_, err = readAccountID(t, e, ak, sk)
	wantCode(t, "call with the deleted key", err, http.StatusUnauthorized, "1")
}

func TestAccessKeyLifecycleV3(t *testing.T) {
	e := apitest.Start(t)
	c := e.V3(e.Titi)
	created, err := c.CreateAccessKey(ctxTimeout(t), oscv3.CreateAccessKeyRequest{})
	if err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	ak, sk := deref(created.AccessKey.AccessKeyId), deref(created.AccessKey.SecretKey)
	if created.AccessKey.CreationDate == nil {
		t.Errorf("new key has no CreationDate")
	}
	if id, err := readAccountID(t, e, ak, sk); err != nil || id != e.Titi.AccountID {
		t.Fatalf("new key: ReadAccounts = %q, %v; want titi's account", id, err)
	}
	// The new key manages keys too.
	self := e.V3(apitest.Account{AccessKey: ak, SecretKey: sk})
	if _, err := self.ReadAccessKeys(ctxTimeout(t), oscv3.ReadAccessKeysRequest{}); err != nil {
		t.Errorf("ReadAccessKeys with the new key: %v", err)
	}

	if _, err := c.UpdateAccessKey(ctxTimeout(t), oscv3.UpdateAccessKeyRequest{AccessKeyId: ak, State: ptr("INACTIVE")}); err != nil {
		t.Fatalf("UpdateAccessKey INACTIVE: %v", err)
	}
	_, err = readAccountID(t, e, ak, sk)
	// ReadAccounts declares no 401 in the spec, so the v3 SDK leaves the
	// body unparsed (oscv3.IsAuthError is false); read the code ourselves.
	wantCode(t, "deactivated key", err, http.StatusUnauthorized, "1")
	// Back to ACTIVE: it works again.
	if _, err := c.UpdateAccessKey(ctxTimeout(t), oscv3.UpdateAccessKeyRequest{AccessKeyId: ak, State: ptr("ACTIVE")}); err != nil {
		t.Fatalf("UpdateAccessKey ACTIVE: %v", err)
	}
	if _, err := readAccountID(t, e, ak, sk); err != nil {
		t.Errorf("reactivated key: %v", err)
	}
	states := []oscv3.AccessKeyState{"ACTIVE"}
	list, err := c.ReadAccessKeys(ctxTimeout(t), oscv3.ReadAccessKeysRequest{Filters: &oscv3.FiltersAccessKeys{States: &states}})
	if err != nil {
		t.Fatalf("ReadAccessKeys: %v", err)
	}
	if list.AccessKeys == nil || len(*list.AccessKeys) != 2 {
		t.Errorf("titi's ACTIVE keys = %+v, want 2", list.AccessKeys)
	}
	if _, err := c.DeleteAccessKey(ctxTimeout(t), oscv3.DeleteAccessKeyRequest{AccessKeyId: ak}); err != nil {
		t.Fatalf("DeleteAccessKey: %v", err)
	}
	_, err = readAccountID(t, e, ak, sk)
	wantCode(t, "deleted key", err, http.StatusUnauthorized, "1")
	// ReadImages declares 401: there the SDK's own helper sees the code.
	_, err = e.V3(apitest.Account{AccessKey: ak, SecretKey: sk}).ReadImages(ctxTimeout(t), oscv3.ReadImagesRequest{})
	if !oscv3.IsAuthError(err) {
		t.Errorf("ReadImages with the deleted key: %v, want oscv3.IsAuthError", err)
	}
	// Deleting it again: the key no longer exists.
	_, err = c.DeleteAccessKey(ctxTimeout(t), oscv3.DeleteAccessKeyRequest{AccessKeyId: ak})
	if err == nil || apitest.Status(err) < 400 || apitest.Status(err) >= 500 {
		t.Errorf("second DeleteAccessKey: %v, want a 4xx", err)
	}
}

// Login/password (Basic + X-Osc-Date) is accepted on the access-key calls
// and nowhere else.
func TestBasicAuth(t *testing.T) {
	e := apitest.Start(t)
	t.Run("v2", func(t *testing.T) {
		c, ctx := e.V2Basic(e.Joe)
		keys, _, err := c.AccessKeyApi.ReadAccessKeys(ctx).ReadAccessKeysRequest(oscv2.ReadAccessKeysRequest{}).Execute()
		if err != nil {
			t.Fatalf("ReadAccessKeys with login/password: %v", err)
		}
		if len(keys.GetAccessKeys()) != 1 || keys.GetAccessKeys()[0].GetAccessKeyId() != e.Joe.AccessKey {
			t.Errorf("ReadAccessKeys = %+v, want joe's key", keys.GetAccessKeys())
		}
		_, _, err = c.ImageApi.ReadImages(ctx).ReadImagesRequest(oscv2.ReadImagesRequest{}).Execute()
		if err == nil || apitest.Status(err) < 400 || apitest.Status(err) >= 500 {
			t.Errorf("ReadImages with login/password: %v, want a 4xx refusal", err)
		}
		bad := e.Joe
		bad.Password = "wrong-password"
		bc, bctx := e.V2Basic(bad)
		_, _, err = bc.AccessKeyApi.ReadAccessKeys(bctx).ReadAccessKeysRequest(oscv2.ReadAccessKeysRequest{}).Execute()
		wantCode(t, "ReadAccessKeys with a wrong password", err, http.StatusUnauthorized, "1")
	})
	t.Run("v3", func(t *testing.T) {
		c := e.V3Login(e.Titi)
		created, err := c.CreateAccessKey(ctxTimeout(t), oscv3.CreateAccessKeyRequest{})
		if err != nil {
			t.Fatalf("CreateAccessKey with login/password: %v", err)
		}
		if id, err := readAccountID(t, e, deref(created.AccessKey.AccessKeyId), deref(created.AccessKey.SecretKey)); err != nil || id != e.Titi.AccountID {
			t.Errorf("key created by login: ReadAccounts = %q, %v", id, err)
		}
		_, err = c.ReadImages(ctxTimeout(t), oscv3.ReadImagesRequest{})
		if err == nil || apitest.Status(err) < 400 || apitest.Status(err) >= 500 {
			t.Errorf("ReadImages with login/password: %v, want a 4xx refusal", err)
		}
	})
	t.Run("no date", func(t *testing.T) {
		r := e.Do(t, apitest.Request{Call: "ReadAccessKeys", Header: http.Header{"Authorization": {basic(e.Joe.Email, e.Joe.Password)}}})
		if r.Status != http.StatusUnauthorized || r.ErrorCode() != "1" {
			t.Errorf("Basic auth without X-Osc-Date: %s, want 401 code 1", r)
		}
	})
}
