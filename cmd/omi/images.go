package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/config"
	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/transfer"
)

// imagesDir is where omi image build puts the bootable official images
// and where omi serve looks for them by default: <data>/images.
func imagesDir(data string) string { return filepath.Join(data, "images") }

// imageBuildCmd runs "omi image build small|debian": it builds a bootable
// image from Debian packages (see package osimage) into the cache, then
// copies it and its manifest to --out, by default where omi serve
// publishes it from.
func imageBuildCmd(args []string) error {
	const usage = "usage: omi image build small|debian [--data DIR | --out FILE] [--cache DIR]"
	if len(args) < 1 || (args[0] != "small" && args[0] != "debian") {
		return errors.New(usage)
	}
	kind := args[0]
	fs := flag.NewFlagSet("omi image build", flag.ContinueOnError)
	data := fs.String("data", envOr("OMI_DATA", "omi-data"), "data directory of omi serve; the image goes to DIR/images/"+kind+".qcow2 (env OMI_DATA)")
	out := fs.String("out", "", "image file to write instead (its manifest goes to FILE.json)")
	cache := fs.String("cache", "", "cache of packages and built images (default $OMI_IMAGE_CACHE, else ~/.cache/omi/images)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New(usage)
	}
	dst := *out
	if dst == "" {
		dst = filepath.Join(imagesDir(*data), kind+".qcow2")
	}
	ctx, cancel := signalContext()
	defer cancel()
	opts := osimage.Options{CacheDir: *cache, Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	start := time.Now()
	var built string
	var err error
	if kind == "small" {
		built, err = osimage.BuildSmall(ctx, opts)
	} else {
		built, err = osimage.BuildDebian(ctx, opts)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	for _, p := range [][2]string{{osimage.ManifestPath(built), osimage.ManifestPath(dst)}, {built, dst}} {
		if err := copyAtomic(p[0], p[1]); err != nil {
			return err
		}
	}
	st, err := os.Stat(dst)
	if err != nil {
		return err
	}
	fmt.Printf("built %s: %s (%.1f MB, %.0f s); omi serve publishes it from %s\n", kind, dst, float64(st.Size())/1e6,
		time.Since(start).Seconds(), filepath.Dir(dst))
	return nil
}

func copyAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	os.Chmod(tmp.Name(), 0o644)
	return os.Rename(tmp.Name(), dst)
}

// imageImportCmd runs "omi image import FILE": it publishes a local qcow2
// or raw disk image as an OMI of the provider (official, public) or of an
// account. Like omi catalog publish it works on the data directory, so
// omi serve must be stopped.
func imageImportCmd(args []string) error {
	const usage = "usage: omi image import FILE --name NAME [--account ID [--public]] [--description TEXT] [--boot-modes legacy,uefi] [--data DIR] [--config FILE]"
	fs := flag.NewFlagSet("omi image import", flag.ContinueOnError)
	name := fs.String("name", "", "OMI name (required; unique in the account)")
	account := fs.String("account", "", "owner account id; empty means the provider: an official, public OMI")
	public := fs.Bool("public", false, "give every account launch permission (provider OMIs always are)")
	desc := fs.String("description", "", "OMI description")
	modes := fs.String("boot-modes", "legacy,uefi", "firmware the disk boots with: legacy, uefi or both")
	data := fs.String("data", envOr("OMI_DATA", "omi-data"), "data directory of the stopped omi serve (env OMI_DATA)")
	cfgPath := fs.String("config", envOr("OMI_CONFIG", ""), "configuration file, for the accounts (env OMI_CONFIG)")
	// The file comes first, flags after it (or the other way round).
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() > 0 || file == "" {
		return errors.New(usage)
	}
	if *name == "" {
		return errors.New("--name is required\n" + usage)
	}
	var bootModes []string
	for _, m := range strings.Split(*modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			bootModes = append(bootModes, m)
		}
	}
	if _, err := os.Stat(file); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	n, err := openOffline(ctx, *data, *cfgPath)
	if err != nil {
		return err
	}
	defer n.Close()
	img, err := n.svc.PublishImage(ctx, service.LocalImageSpec{AccountID: *account, Name: *name, Description: *desc,
		Public: *public, BootModes: bootModes, Import: n.importFile(file)})
	if err != nil {
		return err
	}
	owner := "the provider (official, public)"
	if *account != "" {
		owner = "account " + *account
	}
	fmt.Printf("imported %s as %s (%s, %d GiB, boot modes %s), owned by %s\n", file, img.ImageId, img.ImageName,
		*img.BlockDeviceMappings[0].Bsu.VolumeSize, strings.Join(img.BootModes, ","), owner)
	return nil
}

// openOffline opens the data directory of a stopped omi serve (its lock
// refuses a running one) with the accounts of the configuration.
func openOffline(ctx context.Context, data, cfgPath string) (*node, error) {
	cfg := &config.File{}
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return nil, err
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := openNode(ctx, data, envOr("OMI_STORE", ""), blockConfig{kind: envOr("OMI_BLOCKSTORE", "local"),
		endpoint: os.Getenv("OMI_BLOCKSTORE_S3_ENDPOINT"), region: os.Getenv("OMI_BLOCKSTORE_S3_REGION"),
		bucket: os.Getenv("OMI_BLOCKSTORE_S3_BUCKET"), prefix: envOr("OMI_BLOCKSTORE_S3_PREFIX", "blocks"),
		accessKey: os.Getenv("OMI_BLOCKSTORE_S3_ACCESS_KEY"), secretKey: os.Getenv("OMI_BLOCKSTORE_S3_SECRET_KEY")},
		nodeConfig{name: envOr("OMI_NODE_NAME", ""), ttl: 10 * time.Second}, service.Config{Region: envOr("OMI_REGION", "eu-west-2")}, log)
	if err != nil {
		return nil, err
	}
	if err := n.svc.Provision(ctx, cfg.Specs()); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// importFile returns an Import function reading a local qcow2 or raw
// file (format detected from content) into a snapshot's block map.
func (n *node) importFile(path string) func(ctx context.Context, snapshotID string) (int64, error) {
	return func(ctx context.Context, snapshotID string) (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		var magic [4]byte
		f.ReadAt(magic[:], 0)
		opts := transfer.ImportOptions{}
		if string(magic[:]) != "QFI\xfb" && !(magic[0] == 0x1f && magic[1] == 0x8b) {
			opts.DeclaredSize = st.Size() // raw: the file is the disk
		}
		res, err := transfer.ImportReaderAt(ctx, f, st.Size(), n.plane.Maps(), snapshotID, opts)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		return res.Size, nil
	}
}

// builtImage is an image file of the official images directory.
type builtImage struct {
	path     string
	manifest *osimage.Manifest
}

// findBuilt lists the image files of dir that have a manifest.
func findBuilt(dir string, log *slog.Logger) []builtImage {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []builtImage
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".lock") {
			continue
		}
		p := filepath.Join(dir, name)
		m, err := osimage.ReadManifest(p)
		if err != nil {
			log.Warn("official images: skipping a file without a valid manifest", "file", p, "err", err)
			continue
		}
		out = append(out, builtImage{path: p, manifest: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// publishBuilt publishes the built images of dir as official OMIs, with
// boot modes legacy and uefi, unless the current version of their family
// already has this very disk (by SHA-256); it returns the families it
// covers, whose generated disks are then not published.
func (n *node) publishBuilt(ctx context.Context, dir string, log *slog.Logger) map[string]bool {
	covered := map[string]bool{}
	built := findBuilt(dir, log)
	if len(built) == 0 {
		log.Info("official images: no bootable images built; publishing generated, non-bootable disks (build bootable ones with omi image build small|debian)", "dir", dir)
		return covered
	}
	for _, b := range built {
		family := b.manifest.Family
		sum, err := osimage.FileSHA256(b.path)
		if err != nil {
			log.Error("official images", "file", b.path, "err", err)
			continue
		}
		covered[family] = true
		source := "built:" + sum
		latest, err := n.svc.LatestOfficial(ctx, family)
		if err != nil {
			log.Error("official images", "family", family, "err", err)
			continue
		}
		if latest != nil && tagValue(latest.Tags, service.OfficialSourceTag) == source {
			continue
		}
		img, err := n.svc.PublishOfficial(ctx, service.OfficialSpec{Family: family, Description: b.manifest.Description,
			ProductCodes: []string{"0001"}, BootModes: b.manifest.BootModes, Import: n.importFile(b.path),
			Tags: []omi.Tag{{Key: service.OfficialSourceTag, Value: source}}})
		if err != nil {
			if ctx.Err() == nil {
				log.Error("official images", "family", family, "file", b.path, "err", err)
			}
			continue
		}
		log.Info("official OMI published from a built image", "family", family, "image", img.ImageId, "name", img.ImageName,
			"file", b.path, "boot_modes", strings.Join(img.BootModes, ","))
	}
	return covered
}

func tagValue(tags []omi.Tag, key string) string {
	for _, t := range tags {
		if t.Key == key {
			return t.Value
		}
	}
	return ""
}

// signalContext is cancelled by SIGINT or SIGTERM, so a long build or
// import stops cleanly (an import leaves no partial snapshot).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
