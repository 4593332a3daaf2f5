package omi

// Account is an OUTSCALE account. The API's Account object is a subset of
// it: Password and the provider flag never leave the server.
type Account struct {
	AccountId   string `json:"AccountId"`
	Alias       string `json:"Alias"`
	Email       string `json:"Email"`
	FirstName   string `json:"FirstName,omitempty"`
	LastName    string `json:"LastName,omitempty"`
	CompanyName string `json:"CompanyName,omitempty"`
	// PasswordHash is a salted hash of the console password, used by the
	// login/password (Basic) authentication of the access-key calls.
	PasswordHash string `json:"PasswordHash,omitempty"`
	// Provider marks the account that owns official OMIs (alias Outscale).
	Provider bool `json:"Provider,omitempty"`
}

func (a *Account) Kind() Kind                   { return KindAccount }
func (a *Account) ResourceID() string           { return a.AccountId }
func (a *Account) Owner() string                { return "" }
func (a *Account) IndexName() string            { return a.Email }
func (a *Account) Visibility() (bool, []string) { return false, nil }

// AccessKey states.
const (
	AccessKeyActive   = "ACTIVE"
	AccessKeyInactive = "INACTIVE"
)

// AccessKey is an access key id and secret of an account. The secret is
// stored because request signatures are verified with it (HMAC needs the
// key itself); it is returned to the client only by CreateAccessKey.
type AccessKey struct {
	AccessKeyId          string `json:"AccessKeyId"`
	SecretKey            string `json:"SecretKey,omitempty"`
	AccountId            string `json:"AccountId"`
	State                string `json:"State"`
	Tag                  string `json:"Tag,omitempty"`
	CreationDate         string `json:"CreationDate"`
	LastModificationDate string `json:"LastModificationDate"`
	ExpirationDate       string `json:"ExpirationDate,omitempty"`
}

func (k *AccessKey) Kind() Kind                   { return KindAccessKey }
func (k *AccessKey) ResourceID() string           { return k.AccessKeyId }
func (k *AccessKey) Owner() string                { return k.AccountId }
func (k *AccessKey) IndexName() string            { return "" }
func (k *AccessKey) Visibility() (bool, []string) { return false, nil }

// ValidAccountID reports whether id is 12 decimal digits.
func ValidAccountID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// ValidAccessKeyID reports whether id has the shape clients insist on: 20
// upper-case letters or digits.
func ValidAccessKeyID(id string) bool {
	if len(id) != 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidSecretKey reports whether s is 40 printable characters without
// spaces (oapi-cli refuses other lengths).
func ValidSecretKey(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
