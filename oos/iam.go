package oos

import (
	"context"
	"errors"
	"time"

	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/s3err"
)

// lookupTimeout bounds one credentials lookup: the gateway's IAM interface
// carries no request context.
const lookupTimeout = 10 * time.Second

// keyIAM is the gateway's identity backend. It resolves each access key
// through the caller's lookup at request time and presents the key as its
// account: Account.Access is the account id, so bucket ownership, listings
// and ACL checks are per account, and every key of the account is equal.
// The role is "userplus", the gateway's plain user that may create buckets.
type keyIAM struct {
	lookup CredentialsFunc
}

var _ auth.IAMService = (*keyIAM)(nil)

func (k *keyIAM) GetUserAccount(access string) (auth.Account, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	secret, account, err := k.lookup(ctx, access)
	if errors.Is(err, ErrUnknownKey) {
		return auth.Account{}, auth.ErrNoSuchUser
	}
	if err != nil {
		return auth.Account{}, err
	}
	if secret == "" || !validAccountID(account) {
		// A key without a secret or owner cannot sign anything safely.
		return auth.Account{}, auth.ErrNoSuchUser
	}
	return auth.Account{Access: account, Secret: secret, Role: auth.RoleUserPlus}, nil
}

// ResolveAccounts reports which grantees of an ACL or bucket policy do not
// exist. Grantees are account ids; the lookup only knows keys, so anything
// shaped like an account id is accepted.
func (k *keyIAM) ResolveAccounts(ids []string) ([]string, error) {
	missing := []string{}
	for _, id := range ids {
		if !validAccountID(id) {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// Accounts are managed by omi's API, never through the gateway.

func (k *keyIAM) CreateAccount(auth.Account) error { return notSupported() }
func (k *keyIAM) UpdateUserAccount(string, auth.MutableProps) error {
	return notSupported()
}
func (k *keyIAM) DeleteUserAccount(string) error            { return notSupported() }
func (k *keyIAM) ListUserAccounts() ([]auth.Account, error) { return nil, notSupported() }
func (k *keyIAM) Shutdown() error                           { return nil }

func notSupported() error { return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported) }

// validAccountID reports whether id is 12 decimal digits (an OUTSCALE
// account id).
func validAccountID(id string) bool {
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
