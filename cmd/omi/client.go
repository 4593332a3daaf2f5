package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/config"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sigv4"
)

// imageCmd runs "omi image <sub>".
func imageCmd(args []string) error {
	if len(args) > 0 && args[0] == "build" {
		return imageBuildCmd(args[1:])
	}
	if len(args) > 0 && args[0] == "import" {
		return imageImportCmd(args[1:])
	}
	if len(args) < 1 || args[0] != "inspect" {
		return errors.New("usage: omi image inspect <ami-id>   (uses OSC_ENDPOINT_API, OSC_ACCESS_KEY, OSC_SECRET_KEY, OSC_REGION)\n" +
			"       omi image build small|debian [--data DIR | --out FILE]\n" +
			"       omi image import FILE --name NAME [--account ID [--public]] [--data DIR]")
	}
	fs := flag.NewFlagSet("omi image inspect", flag.ContinueOnError)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: omi image inspect <ami-id>")
	}
	var out json.RawMessage
	if err := apiCall(context.Background(), "ReadImageInspection", map[string]string{"ImageId": fs.Arg(0)}, &out); err != nil {
		return err
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, out, "", "  ")
	fmt.Println(pretty.String())
	return nil
}

// apiCall signs and sends one API call with the credentials of the OSC_*
// environment, the same variables the OUTSCALE SDKs read.
func apiCall(ctx context.Context, name string, in, out any) error {
	endpoint := strings.TrimRight(os.Getenv("OSC_ENDPOINT_API"), "/")
	ak, sk := os.Getenv("OSC_ACCESS_KEY"), os.Getenv("OSC_SECRET_KEY")
	region := envOr("OSC_REGION", "eu-west-2")
	if endpoint == "" || ak == "" || sk == "" {
		return errors.New("set OSC_ENDPOINT_API, OSC_ACCESS_KEY and OSC_SECRET_KEY (omi serve prints them)")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/"+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	signer := sigv4.Signer{Algorithm: "OSC4-HMAC-SHA256", AccessKey: ak, SecretKey: sk, Region: region, Service: "api", Headers: []string{"Content-Type"}}
	if err := signer.Sign(req, body, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []struct{ Code, Type, Details string }
		}
		if json.Unmarshal(data, &e) == nil && len(e.Errors) > 0 {
			return fmt.Errorf("%s: %s %s: %s", name, e.Errors[0].Code, e.Errors[0].Type, e.Errors[0].Details)
		}
		return fmt.Errorf("%s: HTTP %d", name, resp.StatusCode)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		return err
	}
	delete(env, "ResponseContext")
	for _, v := range env {
		return json.Unmarshal(v, out)
	}
	return nil
}

// catalogCmd runs "omi catalog publish": an operator publishes a new
// version of an official OMI. It works on the data directory directly, so
// omi serve must be stopped (the data directory lock says so otherwise).
func catalogCmd(args []string) error {
	if len(args) < 1 || args[0] != "publish" {
		return errors.New("usage: omi catalog publish --data DIR [--config FILE] --preset NAME")
	}
	fs := flag.NewFlagSet("omi catalog publish", flag.ContinueOnError)
	data := fs.String("data", envOr("OMI_DATA", "omi-data"), "data directory of the region (env OMI_DATA)")
	cfgPath := fs.String("config", envOr("OMI_CONFIG", ""), "configuration file, for the provider account (env OMI_CONFIG)")
	preset := fs.String("preset", "", "catalogue family to rebuild: "+presetNames())
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	p, err := catalog.LookupPreset(*preset)
	if err != nil {
		return fmt.Errorf("%w (one of %s)", err, presetNames())
	}
	cfg := &config.File{}
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := openNode(ctx, *data, envOr("OMI_STORE", ""), blockConfig{kind: envOr("OMI_BLOCKSTORE", "local"),
		endpoint: os.Getenv("OMI_BLOCKSTORE_S3_ENDPOINT"), region: os.Getenv("OMI_BLOCKSTORE_S3_REGION"),
		bucket: os.Getenv("OMI_BLOCKSTORE_S3_BUCKET"), prefix: envOr("OMI_BLOCKSTORE_S3_PREFIX", "blocks"),
		accessKey: os.Getenv("OMI_BLOCKSTORE_S3_ACCESS_KEY"), secretKey: os.Getenv("OMI_BLOCKSTORE_S3_SECRET_KEY")},
		nodeConfig{name: envOr("OMI_NODE_NAME", ""), ttl: 10 * time.Second}, service.Config{Region: envOr("OMI_REGION", "eu-west-2")}, log)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.svc.Provision(ctx, cfg.Specs()); err != nil {
		return err
	}
	id, err := n.publishPreset(ctx, p)
	if err != nil {
		return err
	}
	fmt.Printf("published %s as %s; previous versions stay launchable by id and are listed only when asked for by ImageIds\n", p.Name, id)
	return nil
}

func presetNames() string {
	var names []string
	for _, p := range catalog.Presets() {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}
