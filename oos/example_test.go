package oos_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/omiproject/omi/oos"
)

// accessKey and account stand for omi.AccessKey and omi.Account, and
// lookupAccessKey for (*service.Service).LookupAccessKey, whose errors for
// unknown, inactive or expired keys are *omi.Error with Type AccessDenied.
type accessKey struct{ SecretKey string }
type account struct{ AccountId string }

var errAccessDenied = errors.New("AccessDenied")

func lookupAccessKey(ctx context.Context, id string) (*accessKey, *account, error) {
	return nil, nil, errAccessDenied
}

// Example_wiring is how cmd/omi starts the endpoint for --oos-listen
// (default 127.0.0.1:3001): data directory made absolute first (New changes
// the working directory), keys looked up through the accounts service at
// every request, the endpoint URL then known for manifests and --fetch-allow.
func Example_wiring() {
	dataDir, err := filepath.Abs("data") // --data
	if err != nil {
		log.Fatal(err)
	}
	errc := make(chan error, 1)
	srv, err := oos.Start(oos.Config{
		Dir:    filepath.Join(dataDir, "oos"),
		Region: "eu-west-2", // --region
		Credentials: func(ctx context.Context, id string) (string, string, error) {
			key, acct, err := lookupAccessKey(ctx, id)
			// In cmd/omi: var oe *omi.Error; errors.As(err, &oe) && oe.Type == omi.TypeAccessDenied
			if errors.Is(err, errAccessDenied) {
				return "", "", fmt.Errorf("%w: %v", oos.ErrUnknownKey, err)
			}
			if err != nil {
				return "", "", err
			}
			return key.SecretKey, acct.AccountId, nil
		},
	}, "127.0.0.1:3001", errc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "object storage on", srv.Endpoint())

	// ... on SIGTERM, or if <-errc reports a serving failure:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Print(err)
	}
}
