package service

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/omiproject/omi"
)

// MaxAccessKeys is how many access keys one account may hold.
const MaxAccessKeys = 10

// AccountSpec describes an account to provision at start-up (from the
// configuration file or the generated default account).
type AccountSpec struct {
	AccountID  string
	Alias      string
	Email      string
	Password   string // plain text from the config; stored hashed
	Provider   bool
	AccessKeys []KeySpec
}

// KeySpec is an access key to provision.
type KeySpec struct {
	AccessKeyID string
	SecretKey   string
}

// Provision creates or updates the accounts of the configuration, with their
// access keys. The configuration is authoritative for what it names: an
// account's alias, email and password, and the existence and secret of each
// listed key. Keys created through the API are left alone.
func (s *Service) Provision(ctx context.Context, specs []AccountSpec) error {
	for _, sp := range specs {
		if !omi.ValidAccountID(sp.AccountID) {
			return fmt.Errorf("account %q: account id must be 12 digits", sp.AccountID)
		}
		for _, k := range sp.AccessKeys {
			if !omi.ValidAccessKeyID(k.AccessKeyID) {
				return fmt.Errorf("account %s: access key id %q must be 20 upper-case letters or digits", sp.AccountID, k.AccessKeyID)
			}
			if !omi.ValidSecretKey(k.SecretKey) {
				return fmt.Errorf("account %s: secret key of %s must be 40 characters", sp.AccountID, k.AccessKeyID)
			}
		}
	}
	return s.update(ctx, func(tx omi.Tx) error {
		for _, sp := range specs {
			acct, err := omi.Get[omi.Account](tx, sp.AccountID)
			if err != nil && !isNotFound(err) {
				return err
			}
			if acct == nil {
				acct = &omi.Account{AccountId: sp.AccountID}
			}
			acct.Alias, acct.Email, acct.Provider = sp.Alias, sp.Email, sp.Provider
			if sp.Password != "" && !checkPassword(acct.PasswordHash, sp.Password) {
				acct.PasswordHash = hashPassword(sp.Password)
			}
			if err := omi.Put(tx, acct); err != nil {
				return err
			}
			for _, ks := range sp.AccessKeys {
				k, err := omi.Get[omi.AccessKey](tx, ks.AccessKeyID)
				switch {
				case isNotFound(err):
					now := s.nowString()
					k = &omi.AccessKey{AccessKeyId: ks.AccessKeyID, CreationDate: now, LastModificationDate: now, State: omi.AccessKeyActive}
				case err != nil:
					return err
				case k.AccountId != sp.AccountID:
					return fmt.Errorf("access key %s belongs to account %s, not %s", ks.AccessKeyID, k.AccountId, sp.AccountID)
				}
				k.AccountId, k.SecretKey = sp.AccountID, ks.SecretKey
				if err := omi.Put(tx, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// CountAccounts returns how many non-provider accounts exist.
func (s *Service) CountAccounts(ctx context.Context) (int, error) {
	n := 0
	err := s.view(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{}, func(a *omi.Account) (bool, error) {
			if !a.Provider {
				n++
			}
			return true, nil
		})
	})
	return n, err
}

// NewAccountSpec generates a fresh account with one access key: a random
// 12-digit id, a 20-character key id and a 40-character secret.
func NewAccountSpec(alias, email string) AccountSpec {
	digits := randomString(12, "0123456789")
	if digits[0] == '0' {
		digits = "1" + digits[1:]
	}
	return AccountSpec{AccountID: digits, Alias: alias, Email: email, Password: randomString(16, alnum),
		AccessKeys: []KeySpec{{AccessKeyID: randomString(20, upperAlnum), SecretKey: randomString(40, alnum)}}}
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alnum      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const pbkdf2Iterations = 60000

// hashPassword returns a salted PBKDF2-SHA256 hash in the form
// pbkdf2-sha256$iterations$salt$hash.
func hashPassword(pw string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	key, err := pbkdf2.Key(sha256.New, pw, salt, pbkdf2Iterations, 32)
	if err != nil {
		panic("pbkdf2: " + err.Error()) // only fails on FIPS-disallowed parameters, which these are not
	}
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", pbkdf2Iterations, hex.EncodeToString(salt), hex.EncodeToString(key))
}

func checkPassword(stored, pw string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 {
		return false
	}
	salt, err1 := hex.DecodeString(parts[2])
	want, err2 := hex.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pw, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// AuthError is returned by the credential lookups; the transport turns it
// into a 401.
func authError(details string) *omi.Error {
	return omi.Errorf(omi.CodeAuthFailed, omi.TypeAccessDenied, "%s", details)
}

// LookupAccessKey returns the active key and its account for a signature
// check. Unknown, inactive and expired keys fail, so a key stops working as
// soon as it is deactivated or deleted through this node, and within
// keyCacheTTL when another node sharing the store does it (see keyCache).
func (s *Service) LookupAccessKey(ctx context.Context, id string) (*omi.AccessKey, *omi.Account, error) {
	key, acct, ok := s.keys.get(id)
	if !ok {
		gen, at := s.keys.generation(), s.keys.clock()
		err := s.store.View(ctx, func(tx omi.Tx) error {
			var err error
			if key, err = omi.Get[omi.AccessKey](tx, id); err != nil {
				return err
			}
			acct, err = omi.Get[omi.Account](tx, key.AccountId)
			return err
		})
		if isNotFound(err) {
			return nil, nil, authError("unknown access key")
		}
		if err != nil {
			return nil, nil, omi.Internal(err)
		}
		s.keys.put(gen, id, key, acct, at)
	}
	if key.State != omi.AccessKeyActive {
		return nil, nil, authError("access key is inactive")
	}
	if key.ExpirationDate != "" {
		if exp, err := parseDate(key.ExpirationDate); err == nil && !s.now().Before(exp) {
			return nil, nil, authError("access key has expired")
		}
	}
	return key, acct, nil
}

// verifyLogin checks an email and password against the store, without
// the guard: use CheckLogin.
func (s *Service) verifyLogin(ctx context.Context, email, password string) (*omi.Account, error) {
	var acct *omi.Account
	err := s.store.View(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{Names: []string{email}, Limit: 1}, func(a *omi.Account) (bool, error) {
			acct = a
			return false, nil
		})
	})
	if err != nil {
		return nil, omi.Internal(err)
	}
	if acct == nil || acct.PasswordHash == "" || !checkPassword(acct.PasswordHash, password) {
		return nil, authError("bad login or password")
	}
	return acct, nil
}

// parseDate accepts the date and date-time forms clients send.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 date: %q", s)
}

// AccountOut is the API's Account object.
type AccountOut struct {
	AccountId            string   `json:"AccountId"`
	AdditionalEmails     []string `json:"AdditionalEmails"`
	City                 string   `json:"City"`
	CompanyName          string   `json:"CompanyName"`
	Country              string   `json:"Country"`
	CustomerId           string   `json:"CustomerId"`
	Email                string   `json:"Email"`
	FirstName            string   `json:"FirstName"`
	JobTitle             string   `json:"JobTitle"`
	LastName             string   `json:"LastName"`
	MobileNumber         string   `json:"MobileNumber"`
	OutscaleLoginAllowed bool     `json:"OutscaleLoginAllowed"`
	PhoneNumber          string   `json:"PhoneNumber"`
	StateProvince        string   `json:"StateProvince"`
	VatNumber            string   `json:"VatNumber"`
	ZipCode              string   `json:"ZipCode"`
}

type ReadAccountsRequest struct{ Base }
type ReadAccountsResponse struct {
	Accounts []AccountOut `json:"Accounts"`
}

// ReadAccounts returns the caller's own account.
func (s *Service) ReadAccounts(ctx context.Context, c *omi.Caller, in *ReadAccountsRequest) (*ReadAccountsResponse, error) {
	a := c.Account
	return &ReadAccountsResponse{Accounts: []AccountOut{{AccountId: a.AccountId, AdditionalEmails: []string{},
		CompanyName: a.CompanyName, CustomerId: a.AccountId, Email: a.Email, FirstName: a.FirstName,
		LastName: a.LastName, OutscaleLoginAllowed: a.PasswordHash != ""}}}, nil
}

type CheckAuthenticationRequest struct {
	Base
	Login    string `json:"Login"`
	Password string `json:"Password"`
}
type CheckAuthenticationResponse struct{}

// CheckAuthentication checks a login and password given in the body. Only
// the caller's own login may be checked: otherwise any account could test
// another's password (and lock it out). Failures count towards the
// lockout of the login and of the client address, like failed logins.
func (s *Service) CheckAuthentication(ctx context.Context, c *omi.Caller, in *CheckAuthenticationRequest) (*CheckAuthenticationResponse, error) {
	if in.Login == "" || in.Password == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Login and Password are required")
	}
	if !strings.EqualFold(strings.TrimSpace(in.Login), c.Account.Email) {
		return nil, s.refuseForeignLogin(ctx, c)
	}
	if _, err := s.checkLogin(ctx, authKindCheck, in.Login, in.Password); err != nil {
		return nil, err
	}
	return &CheckAuthenticationResponse{}, nil
}

// AccessKeyOut is the API's AccessKey object; SecretKey is only set by
// CreateAccessKey.
type AccessKeyOut struct {
	AccessKeyId          string `json:"AccessKeyId"`
	CreationDate         string `json:"CreationDate"`
	ExpirationDate       string `json:"ExpirationDate,omitempty"`
	LastModificationDate string `json:"LastModificationDate"`
	State                string `json:"State"`
	Tag                  string `json:"Tag,omitempty"`
}

// AccessKeySecretOut adds the secret, returned once at creation.
type AccessKeySecretOut struct {
	AccessKeyOut
	SecretKey string `json:"SecretKey"`
}

func accessKeyOut(k *omi.AccessKey) AccessKeyOut {
	return AccessKeyOut{AccessKeyId: k.AccessKeyId, CreationDate: k.CreationDate, ExpirationDate: k.ExpirationDate,
		LastModificationDate: k.LastModificationDate, State: k.State, Tag: k.Tag}
}

type CreateAccessKeyRequest struct {
	Base
	ExpirationDate string `json:"ExpirationDate"`
	Tag            string `json:"Tag"`
	UserName       string `json:"UserName"`
}
type CreateAccessKeyResponse struct {
	AccessKey AccessKeySecretOut `json:"AccessKey"`
}

// CreateAccessKey creates a new active key for the caller's account.
func (s *Service) CreateAccessKey(ctx context.Context, c *omi.Caller, in *CreateAccessKeyRequest) (*CreateAccessKeyResponse, error) {
	if in.UserName != "" {
		return nil, omi.Errorf("8018", omi.TypeNotSupported, "EIM users are not supported; omit UserName")
	}
	exp, err := expirationDate(in.ExpirationDate, s.now())
	if err != nil {
		return nil, err
	}
	if len(in.Tag) > 255 {
		return nil, omi.Invalid(omi.CodeValueLength, "Tag must be at most 255 characters")
	}
	now := s.nowString()
	k := &omi.AccessKey{AccessKeyId: randomString(20, upperAlnum), SecretKey: randomString(40, alnum),
		AccountId: c.AccountID(), State: omi.AccessKeyActive, Tag: in.Tag, CreationDate: now,
		LastModificationDate: now, ExpirationDate: exp}
	err = s.update(ctx, func(tx omi.Tx) error {
		n := 0
		if err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(*omi.AccessKey) (bool, error) {
			n++
			return true, nil
		}); err != nil {
			return err
		}
		if n >= MaxAccessKeys {
			return omi.Errorf(omi.CodeTooManyKeys, omi.TypeTooManyResources, "an account can hold at most %d access keys", MaxAccessKeys)
		}
		return insertNew(tx, k, func() { k.AccessKeyId = randomString(20, upperAlnum) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateAccessKeyResponse{AccessKey: AccessKeySecretOut{AccessKeyOut: accessKeyOut(k), SecretKey: k.SecretKey}}, nil
}

// expirationDate validates an ExpirationDate: a date or date-time in the
// future, returned in the API's format.
func expirationDate(v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	t, err := parseDate(v)
	if err != nil {
		return "", omi.Invalid(omi.CodeInvalidValue, "ExpirationDate %q is not an ISO 8601 date or date-time", v)
	}
	if !t.After(now) {
		return "", omi.Invalid(omi.CodeInvalidValue, "ExpirationDate must be in the future")
	}
	return omi.FormatTime(t), nil
}

type FiltersAccessKeys struct {
	AccessKeyIds []string `json:"AccessKeyIds"`
	States       []string `json:"States"`
}
type ReadAccessKeysRequest struct {
	Base
	Filters  *FiltersAccessKeys `json:"Filters"`
	Tag      string             `json:"Tag"`
	UserName string             `json:"UserName"`
}
type ReadAccessKeysResponse struct {
	AccessKeys []AccessKeyOut `json:"AccessKeys"`
}

// ReadAccessKeys lists the caller's keys, without secrets.
func (s *Service) ReadAccessKeys(ctx context.Context, c *omi.Caller, in *ReadAccessKeysRequest) (*ReadAccessKeysResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersAccessKeys{}
	}
	for _, st := range f.States {
		if st != omi.AccessKeyActive && st != omi.AccessKeyInactive {
			return nil, omi.Invalid(omi.CodeInvalidValue, "States must be ACTIVE or INACTIVE, not %q", st)
		}
	}
	out := []AccessKeyOut{}
	err := s.view(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.AccessKeyIds}, func(k *omi.AccessKey) (bool, error) {
			if anyOf(f.States, k.State) {
				out = append(out, accessKeyOut(k))
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return &ReadAccessKeysResponse{AccessKeys: out}, nil
}

type UpdateAccessKeyRequest struct {
	Base
	AccessKeyId         string `json:"AccessKeyId"`
	State               string `json:"State"`
	ExpirationDate      string `json:"ExpirationDate"`
	ClearExpirationDate bool   `json:"ClearExpirationDate"`
	Tag                 string `json:"Tag"`
	ClearTag            bool   `json:"ClearTag"`
	UserName            string `json:"UserName"`
}
type UpdateAccessKeyResponse struct {
	AccessKey AccessKeyOut `json:"AccessKey"`
}

// UpdateAccessKey changes a key's state, expiration or tag. A key made
// INACTIVE stops authenticating at once.
func (s *Service) UpdateAccessKey(ctx context.Context, c *omi.Caller, in *UpdateAccessKeyRequest) (*UpdateAccessKeyResponse, error) {
	if in.AccessKeyId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "AccessKeyId is required")
	}
	if in.State != "" && in.State != omi.AccessKeyActive && in.State != omi.AccessKeyInactive {
		return nil, omi.Invalid(omi.CodeInvalidValue, "State must be ACTIVE or INACTIVE, not %q", in.State)
	}
	exp, err := expirationDate(in.ExpirationDate, s.now())
	if err != nil {
		return nil, err
	}
	if len(in.Tag) > 255 {
		return nil, omi.Invalid(omi.CodeValueLength, "Tag must be at most 255 characters")
	}
	var k *omi.AccessKey
	err = s.update(ctx, func(tx omi.Tx) error {
		var err error
		k, err = s.ownAccessKey(tx, c, in.AccessKeyId)
		if err != nil {
			return err
		}
		if in.State != "" {
			k.State = in.State
		}
		if exp != "" {
			k.ExpirationDate = exp
		}
		if in.ClearExpirationDate {
			k.ExpirationDate = ""
		}
		if in.Tag != "" {
			k.Tag = in.Tag
		}
		if in.ClearTag {
			k.Tag = ""
		}
		k.LastModificationDate = s.nowString()
		return omi.Put(tx, k)
	})
	if err != nil {
		return nil, err
	}
	return &UpdateAccessKeyResponse{AccessKey: accessKeyOut(k)}, nil
}

func (s *Service) ownAccessKey(tx omi.Tx, c *omi.Caller, id string) (*omi.AccessKey, error) {
	k, err := omi.Get[omi.AccessKey](tx, id)
	if isNotFound(err) || (err == nil && k.AccountId != c.AccountID()) {
		return nil, omi.Invalid(omi.CodeNoSuchAccessKey, "The AccessKeyId '%s' doesn't exist.", id)
	}
	return k, err
}

type DeleteAccessKeyRequest struct {
	Base
	AccessKeyId string `json:"AccessKeyId"`
	UserName    string `json:"UserName"`
}
type DeleteAccessKeyResponse struct{}

// DeleteAccessKey removes a key; requests signed with it fail from then on.
func (s *Service) DeleteAccessKey(ctx context.Context, c *omi.Caller, in *DeleteAccessKeyRequest) (*DeleteAccessKeyResponse, error) {
	if in.AccessKeyId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "AccessKeyId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		if _, err := s.ownAccessKey(tx, c, in.AccessKeyId); err != nil {
			return err
		}
		return tx.Delete(omi.KindAccessKey, in.AccessKeyId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteAccessKeyResponse{}, nil
}

// anyOf reports whether list is empty or holds v.
func anyOf[T comparable](list []T, v T) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
