// Package config reads omi's YAML configuration file: the region and the
// accounts with their access keys. Flags and environment variables override
// the file; see cmd/omi.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// File is the configuration file.
type File struct {
	// Region is the region this process serves (default eu-west-2).
	Region string `yaml:"region"`
	// Accounts are provisioned at every start; the file is authoritative
	// for what it names.
	Accounts []Account `yaml:"accounts"`
	// Provider is the account that owns the official OMIs. Optional: a
	// built-in provider account (alias Outscale) is used when absent.
	Provider *Account `yaml:"provider"`
	// RefusePublicWithFindings refuses GlobalPermission on an OMI whose
	// hygiene inspection is not clean.
	RefusePublicWithFindings bool `yaml:"refuse_public_with_findings"`
	// Marketplace lists the product types that seller accounts publish
	// OMIs with; ReadProductTypes shows them.
	Marketplace []Product `yaml:"marketplace"`
	// LoginLockout limits password guessing; flags and OMI_* variables
	// override each field.
	LoginLockout LoginLockout `yaml:"login_lockout"`
	// Signature restricts the signatures the API accepts.
	Signature Signature `yaml:"signature"`
	// Regions lists the regions of the deployment (one omi process, or
	// cluster, per region) and their API endpoints, so that ReadRegions
	// describes the deployment as the real cloud describes its own.
	// Default: only the region this process serves.
	Regions []Region `yaml:"regions"`
	// Subregions are the letters of the served region's subregions
	// (default a, b, c, as eu-west-2 on the real cloud).
	Subregions []string `yaml:"subregions"`
}

// Region is one entry of the regions section.
type Region struct {
	Name string `yaml:"name"`
	// Endpoint is the API host name clients use for the region, as
	// ReadRegions gives it (the real cloud: api.eu-west-2.outscale.com).
	Endpoint string `yaml:"endpoint"`
}

// ServiceRegions converts the regions section for the service.
func (f *File) ServiceRegions() []service.Region {
	var out []service.Region
	for _, r := range f.Regions {
		out = append(out, service.Region{RegionName: r.Name, Endpoint: r.Endpoint})
	}
	return out
}

// LoginLockout is the login_lockout section: how many failed logins (Basic
// authentication, CheckAuthentication) lock a login or a client address
// out, and for how long. Unset fields keep their defaults; 0 failures
// disables that limit.
type LoginLockout struct {
	LoginFailures   *int          `yaml:"login_failures"`
	AddressFailures *int          `yaml:"address_failures"`
	Delay           time.Duration `yaml:"delay"`
	MaxDelay        time.Duration `yaml:"max_delay"`
}

// Signature is the signature section: the credential-scope regions the
// API accepts (default: the region served) and whether the scopes official
// clients derive themselves are accepted too (default true: libcurl's
// host-derived one for oapi-cli, osc-sdk-go v2's fixed eu-west-2/oapi).
type Signature struct {
	Regions      []string `yaml:"regions"`
	ClientScopes *bool    `yaml:"client_scopes"`
}

// Product is a marketplace product type.
type Product struct {
	ProductTypeID   string `yaml:"product_type_id"`
	Description     string `yaml:"description"`
	Vendor          string `yaml:"vendor"`
	SellerAccountID string `yaml:"seller_account_id"`
}

// MarketplaceProducts converts the marketplace section for the service.
func (f *File) MarketplaceProducts() []service.MarketplaceProduct {
	var out []service.MarketplaceProduct
	for _, p := range f.Marketplace {
		out = append(out, service.MarketplaceProduct{ProductTypeId: p.ProductTypeID, Description: p.Description,
			Vendor: p.Vendor, SellerAccountId: p.SellerAccountID})
	}
	return out
}

// Account is one account of the file.
type Account struct {
	AccountID  string      `yaml:"account_id"`
	Alias      string      `yaml:"alias"`
	Email      string      `yaml:"email"`
	Password   string      `yaml:"password"`
	AccessKeys []AccessKey `yaml:"access_keys"`
}

// AccessKey is an access key id and secret.
type AccessKey struct {
	AccessKeyID string `yaml:"access_key_id"`
	SecretKey   string `yaml:"secret_key"`
}

// DefaultProvider is the built-in provider account: it owns the official
// OMIs and has no access key unless the file gives it one.
var DefaultProvider = Account{AccountID: "000000000001", Alias: "Outscale", Email: "provider@omi.invalid"}

// regionName is the form of OUTSCALE region names (eu-west-2,
// cloudgouv-eu-west-1).
var regionName = regexp.MustCompile(`^[a-z]+(-[a-z]+)*-[0-9]+$`)

// Load reads and validates a configuration file. Unknown keys are errors,
// so a typo does not silently drop an account.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data)
}

// Parse decodes and validates configuration data.
func Parse(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks ids, keys and uniqueness.
func (f *File) Validate() error {
	ids, emails, keys := map[string]bool{}, map[string]bool{}, map[string]bool{}
	all := f.Accounts
	if f.Provider != nil {
		all = append(append([]Account{}, all...), *f.Provider)
	}
	for i, p := range f.Marketplace {
		if len(p.ProductTypeID) < 4 || p.Description == "" {
			return fmt.Errorf("config: marketplace[%d]: product_type_id (at least 4 characters) and description are required", i)
		}
		if !omi.ValidAccountID(p.SellerAccountID) {
			return fmt.Errorf("config: marketplace[%d]: seller_account_id %q must be 12 digits", i, p.SellerAccountID)
		}
	}
	if l := f.LoginLockout; (l.LoginFailures != nil && *l.LoginFailures < 0) || (l.AddressFailures != nil && *l.AddressFailures < 0) || l.Delay < 0 || l.MaxDelay < 0 {
		return fmt.Errorf("config: login_lockout: failures and delays must not be negative")
	}
	seen := map[string]bool{}
	for i, r := range f.Regions {
		if !regionName.MatchString(r.Name) || r.Endpoint == "" {
			return fmt.Errorf("config: regions[%d]: name (like eu-west-2) and endpoint are required, got %q and %q", i, r.Name, r.Endpoint)
		}
		if seen[r.Name] {
			return fmt.Errorf("config: regions[%d]: %s is listed twice", i, r.Name)
		}
		seen[r.Name] = true
	}
	seen = map[string]bool{}
	for i, l := range f.Subregions {
		if len(l) != 1 || l[0] < 'a' || l[0] > 'z' || seen[l] {
			return fmt.Errorf("config: subregions[%d]: %q must be one letter a to z, listed once", i, l)
		}
		seen[l] = true
	}
	for i, r := range f.Signature.Regions {
		if r == "" {
			return fmt.Errorf("config: signature.regions[%d] is empty", i)
		}
	}
	for i, a := range all {
		where := fmt.Sprintf("accounts[%d] (%s)", i, a.Alias)
		if !omi.ValidAccountID(a.AccountID) {
			return fmt.Errorf("config: %s: account_id %q must be 12 digits", where, a.AccountID)
		}
		if ids[a.AccountID] {
			return fmt.Errorf("config: %s: account_id %s is listed twice", where, a.AccountID)
		}
		ids[a.AccountID] = true
		if a.Email == "" {
			return fmt.Errorf("config: %s: email is required (it is the login of the access-key calls)", where)
		}
		if emails[a.Email] {
			return fmt.Errorf("config: %s: email %s is listed twice", where, a.Email)
		}
		emails[a.Email] = true
		for _, k := range a.AccessKeys {
			if !omi.ValidAccessKeyID(k.AccessKeyID) {
				return fmt.Errorf("config: %s: access_key_id %q must be 20 upper-case letters or digits", where, k.AccessKeyID)
			}
			if !omi.ValidSecretKey(k.SecretKey) {
				return fmt.Errorf("config: %s: secret_key of %s must be 40 printable characters", where, k.AccessKeyID)
			}
			if keys[k.AccessKeyID] {
				return fmt.Errorf("config: %s: access key %s is listed twice", where, k.AccessKeyID)
			}
			keys[k.AccessKeyID] = true
		}
	}
	return nil
}

// Specs turns the file's accounts, and the provider account, into what the
// service provisions.
func (f *File) Specs() []service.AccountSpec {
	prov := DefaultProvider
	if f.Provider != nil {
		prov = *f.Provider
	}
	out := []service.AccountSpec{spec(prov, true)}
	for _, a := range f.Accounts {
		out = append(out, spec(a, false))
	}
	return out
}

func spec(a Account, provider bool) service.AccountSpec {
	s := service.AccountSpec{AccountID: a.AccountID, Alias: a.Alias, Email: a.Email, Password: a.Password, Provider: provider}
	for _, k := range a.AccessKeys {
		s.AccessKeys = append(s.AccessKeys, service.KeySpec{AccessKeyID: k.AccessKeyID, SecretKey: k.SecretKey})
	}
	return s
}
