// Package xfer implements the service's Transfers: OMI and snapshot exports
// to an S3 bucket (the built-in object storage or any S3 service) and
// imports from pre-signed URLs. It composes the disk pipelines of package
// transfer, the S3 client of package s3x and the allow-listed fetcher of
// package fetch, and maps their failures to OUTSCALE error codes.
package xfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/fetch"
	"github.com/omiproject/omi/s3x"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/transfer"
)

// ManifestTTL is how long the pre-signed URLs of an export stay valid; a
// manifest is usable for this long, as on OUTSCALE.
const ManifestTTL = 7 * 24 * time.Hour

// Transfers moves disks between the block maps and object storage.
type Transfers struct {
	maps     *blockmap.Manager
	fetcher  *fetch.Fetcher
	endpoint string // S3 endpoint URL exports write to
	region   string // its signing region
}

// New returns the transfers of one omi process. endpoint is the S3
// endpoint exports write to (the built-in OOS or an external one).
func New(maps *blockmap.Manager, fetcher *fetch.Fetcher, endpoint, region string) *Transfers {
	return &Transfers{maps: maps, fetcher: fetcher, endpoint: endpoint, region: region}
}

var _ service.Transfers = (*Transfers)(nil)

// CheckURL implements service.Transfers.
func (t *Transfers) CheckURL(rawURL string) error {
	if err := t.fetcher.Check(rawURL); err != nil {
		return urlError(err)
	}
	return nil
}

// urlError maps a fetch failure to the API error the caller sees.
func urlError(err error) error {
	var st *fetch.StatusError
	switch {
	case errors.Is(err, fetch.ErrNotAllowed):
		return &omi.Error{Code: "4074", Type: omi.TypeInvalidParameter, Err: err,
			Details: "the URL is not allowed: omi fetches only from the object storage endpoints on its allow-list (omi serve --fetch-allow): " + err.Error()}
	case errors.Is(err, fetch.ErrTooLarge):
		return &omi.Error{Code: "4203", Type: omi.TypeInvalidParameter, Details: err.Error(), Err: err}
	case errors.As(err, &st):
		if st.Code == 404 {
			return &omi.Error{Code: "5037", Type: omi.TypeInvalidResource, Details: "the object does not exist: " + err.Error(), Err: err}
		}
		return &omi.Error{Code: "4088", Type: omi.TypeInvalidParameter, Details: "the object storage refused the request: " + err.Error(), Err: err}
	}
	var oe *omi.Error
	if errors.As(err, &oe) {
		return oe
	}
	return &omi.Error{Code: "4088", Type: omi.TypeInvalidParameter, Details: "the object storage could not be reached: " + err.Error(), Err: err}
}

// ReadManifest implements service.Transfers.
func (t *Transfers) ReadManifest(ctx context.Context, rawURL string) (*service.ImportPlan, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body, _, err := t.fetcher.Get(ctx, rawURL)
	if err != nil {
		return nil, urlError(err)
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, 1<<20+1))
	if err != nil {
		return nil, urlError(err)
	}
	m, err := transfer.ParseManifest(data)
	if err != nil {
		return nil, err
	}
	plan := &service.ImportPlan{Name: m.Image.Name, Description: m.Image.Description, Architecture: m.Image.Architecture,
		ProductCodes: m.Image.ProductTypes}
	for _, s := range m.Image.Snapshots {
		plan.Disks = append(plan.Disks, service.ImportDiskPlan{Device: s.Device, URL: s.PreSignedUrl, Size: s.Size,
			SHA256: s.DiskSha256, DeleteOnTermination: s.DeleteOnTermination, VolumeType: s.VolumeType, Iops: s.Iops})
	}
	return plan, nil
}

// ImportDisk implements service.Transfers.
func (t *Transfers) ImportDisk(ctx context.Context, rawURL, snapshotID string, size int64, sha256 string, progress func(pct int)) error {
	body, n, err := t.fetcher.Get(ctx, rawURL)
	if err != nil {
		return urlError(err)
	}
	defer body.Close()
	_, err = transfer.ImportDisk(ctx, body, t.maps, snapshotID, transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: sha256,
		ObjectSize: n, Progress: percent(progress, 0, 100)})
	if err != nil {
		return transfer.AsAPIError(err)
	}
	return nil
}

// percent maps done/total to a percentage in [lo, hi).
func percent(progress func(int), lo, hi int) func(done, total int64) {
	return func(done, total int64) {
		if progress == nil || total <= 0 {
			return
		}
		progress(lo + int(int64(hi-lo)*done/total))
	}
}

// Export implements service.Transfers: each snapshot streams through
// qcow2/raw and parallel gzip into a multipart upload, with no local copy.
func (t *Transfers) Export(ctx context.Context, job *service.ExportJob, record func(key string) error, progress func(pct int)) (string, error) {
	client := s3x.NewClient(t.endpoint, t.region, job.Dest.AccessKey, job.Dest.SecretKey)
	if err := client.HeadBucket(ctx, job.Dest.Bucket); err != nil {
		switch {
		case s3x.IsNotFound(err):
			return "", omi.Invalid("4002", "bucket %s does not exist", job.Dest.Bucket)
		case s3x.IsAccessDenied(err):
			return "", omi.Invalid("4088", "access to bucket %s is denied with the export's credentials", job.Dest.Bucket)
		}
		return "", omi.Invalid("4088", "bucket %s cannot be reached: %v", job.Dest.Bucket, err)
	}
	format := diskimage.Format(job.Task.OsuExport.DiskImageFormat)
	var total int64
	for _, sn := range job.Snapshots {
		total += sn.SizeBytes
	}
	var done int64
	var entries []transfer.ManifestSnapshot
	for _, sn := range job.Snapshots {
		name := transfer.ObjectName(sn.SnapshotId, format)
		key := job.Prefix + name
		if err := record(key); err != nil {
			return "", err
		}
		base := done
		res, err := t.exportOne(ctx, client, job.Dest.Bucket, key, sn.SnapshotId, format, func(d, _ int64) {
			if progress != nil && total > 0 {
				progress(int(99 * (base + d) / total))
			}
		})
		if err != nil {
			return "", err
		}
		done += sn.SizeBytes
		if job.Image == nil {
			continue
		}
		url, err := client.Presign(ctx, job.Dest.Bucket, key, ManifestTTL)
		if err != nil {
			return "", err
		}
		m := mappingOf(job.Image, sn.SnapshotId)
		var iops *int
		vtype, del := omi.VolumeStandard, true
		if m != nil {
			iops, vtype = m.Iops, m.VolumeType
			if m.DeleteOnVmDeletion != nil {
				del = *m.DeleteOnVmDeletion
			}
		}
		entries = append(entries, res.ManifestSnapshot(deviceOf(job.Image, sn.SnapshotId), name, url, vtype, iops, del))
	}
	if job.Image == nil {
		return "", nil
	}
	img := job.Image
	man := &transfer.Manifest{Version: transfer.ManifestVersion, Image: transfer.ManifestImage{Name: img.ImageName,
		Description: img.Description, Architecture: img.Architecture, Type: "machine", ProductTypes: img.ProductCodes,
		Public: img.PermissionsToLaunch.GlobalPermission, Snapshots: entries}}
	data, err := man.Marshal()
	if err != nil {
		return "", err
	}
	key := job.Prefix + img.ImageId + ".manifest.json"
	if err := record(key); err != nil {
		return "", err
	}
	if _, err := client.Upload(ctx, job.Dest.Bucket, key, strings.NewReader(string(data)), &s3x.UploadOptions{ContentType: "application/json"}); err != nil {
		return "", fmt.Errorf("upload manifest: %w", err)
	}
	return client.Presign(ctx, job.Dest.Bucket, key, ManifestTTL)
}

// exportOne streams one snapshot into one object.
func (t *Transfers) exportOne(ctx context.Context, client *s3x.Client, bucket, key, snapID string, format diskimage.Format,
	progress func(done, total int64)) (transfer.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type out struct {
		res transfer.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := transfer.ExportSnapshot(ctx, t.maps, snapID, format, pw, progress)
		pw.CloseWithError(err)
		done <- out{res, err}
	}()
	_, uerr := client.Upload(ctx, bucket, key, pr, nil)
	pr.CloseWithError(uerr)
	if uerr != nil {
		cancel()
	}
	o := <-done
	if o.err != nil {
		return o.res, fmt.Errorf("export %s: %w", snapID, o.err)
	}
	if uerr != nil {
		return o.res, fmt.Errorf("upload %s: %w", key, uerr)
	}
	return o.res, nil
}

func mappingOf(img *omi.Image, snapID string) *omi.BsuImage {
	for _, m := range img.BlockDeviceMappings {
		if m.Bsu != nil && m.Bsu.SnapshotId == snapID {
			return m.Bsu
		}
	}
	return nil
}

func deviceOf(img *omi.Image, snapID string) string {
	for _, m := range img.BlockDeviceMappings {
		if m.Bsu != nil && m.Bsu.SnapshotId == snapID {
			return m.DeviceName
		}
	}
	return ""
}

// RemoveObjects implements service.Transfers.
func (t *Transfers) RemoveObjects(ctx context.Context, dest service.Destination, keys []string) error {
	client := s3x.NewClient(t.endpoint, t.region, dest.AccessKey, dest.SecretKey)
	var errs []error
	for _, k := range keys {
		if _, err := client.Delete(ctx, dest.Bucket, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
