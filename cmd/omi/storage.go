package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/fetch"
	"github.com/omiproject/omi/oos"
	"github.com/omiproject/omi/xfer"
)

// startObjectStorage starts the built-in object storage (unless disabled)
// and attaches exports and imports to the service: exports write to the
// built-in endpoint or to --s3-endpoint; imports fetch only from the
// allow-list (both endpoints by default, plus --fetch-allow).
func (n *node) startObjectStorage(ctx context.Context, f *serveFlags, region string, log *slog.Logger) error {
	var allow []string
	endpoint := f.s3Endpoint
	if f.oosListen != "" {
		srv, err := oos.Start(oos.Config{Dir: filepath.Join(f.data, "oos"), Region: region, PublicURL: f.oosPublic,
			Credentials: n.oosCredentials}, f.oosListen, nil)
		if err != nil {
			return err
		}
		n.oos = srv
		if endpoint == "" {
			endpoint = srv.Endpoint()
		}
		e, err := fetch.EntryFromURL(srv.Endpoint())
		if err != nil {
			return err
		}
		allow = append(allow, e)
		log.Info("object storage", "endpoint", srv.Endpoint())
	}
	if f.s3Endpoint != "" {
		e, err := fetch.EntryFromURL(f.s3Endpoint)
		if err != nil {
			return fmt.Errorf("--s3-endpoint: %w", err)
		}
		allow = append(allow, e)
	}
	if f.fetchAllow != "" {
		extra, err := fetch.ParseAllowList(f.fetchAllow)
		if err != nil {
			return fmt.Errorf("--fetch-allow: %w", err)
		}
		allow = append(allow, extra...)
	}
	if endpoint == "" {
		log.Warn("no object storage: exports and imports are disabled")
		return nil
	}
	fetcher, err := fetch.New(allow, fetch.Options{})
	if err != nil {
		return err
	}
	n.svc.SetTransfers(xfer.New(n.plane.Maps(), fetcher, endpoint, region))
	return nil
}

// oosCredentials resolves the object storage's access keys with the API's
// accounts: the same keys work on both, and a key deactivated through the
// API stops working on the object storage at once.
func (n *node) oosCredentials(ctx context.Context, accessKeyID string) (string, string, error) {
	key, acct, err := n.svc.LookupAccessKey(ctx, accessKeyID)
	if err != nil {
		if omi.AsError(err).Type != omi.TypeInternal {
			return "", "", fmt.Errorf("%w: %v", oos.ErrUnknownKey, err)
		}
		return "", "", err
	}
	return key.SecretKey, acct.AccountId, nil
}

func (n *node) stopObjectStorage() {
	if n.oos == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.oos.Shutdown(ctx)
}
