package service_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// replayingStore runs every Update's function twice, the first time in a
// transaction it then rolls back: what PostgreSQL's serialisation retries
// do to a function under contention.
type replayingStore struct{ omi.Store }

var errReplay = errors.New("replay")

func (s replayingStore) Update(ctx context.Context, fn func(omi.Tx) error) error {
	err := s.Store.Update(ctx, func(tx omi.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errReplay
	})
	if !errors.Is(err, errReplay) {
		return err
	}
	return s.Store.Update(ctx, fn)
}

// TestWritesSurviveRetries checks that no call keeps, from an aborted
// attempt, what its function collected outside the transaction.
func TestWritesSurviveRetries(t *testing.T) {
	ctx := context.Background()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	svc := service.New(replayingStore{inner}, service.Config{Region: "eu-west-2"}, nil)
	spec := service.AccountSpec{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"}
	if err := svc.Provision(ctx, []service.AccountSpec{spec}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, joe: &omi.Caller{Account: &omi.Account{AccountId: spec.AccountID, Alias: "joe"}}}
	base := e.image(e.joe, "base")

	vms, err := svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: base.ImageId, MinVmsCount: ptr(2), MaxVmsCount: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	if len(vms.Vms) != 2 {
		t.Fatalf("CreateVms of 2 answered %d VMs", len(vms.Vms))
	}
	all, err := svc.ReadVms(ctx, e.joe, &service.ReadVmsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Vms) != 2 {
		t.Fatalf("%d VMs exist after creating 2", len(all.Vms))
	}

	fromVm, err := svc.CreateImage(ctx, e.joe, &service.CreateImageRequest{VmId: vms.Vms[0].VmId, ImageName: "from-vm", NoReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	copied, err := svc.CreateImage(ctx, e.joe, &service.CreateImageRequest{SourceImageId: base.ImageId, SourceRegionName: "eu-west-2", ImageName: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	for _, id := range []string{fromVm.Image.ImageId, copied.Image.ImageId} {
		out, err := svc.ReadImages(ctx, e.joe, &service.ReadImagesRequest{Filters: &service.FiltersImage{ImageIds: []string{id}}})
		if err != nil {
			t.Fatal(err)
		}
		img := out.Images[0]
		if img.State != omi.ImageAvailable || len(img.BlockDeviceMappings) != 1 {
			t.Fatalf("%s is %s with %d mappings, want available with 1", id, img.State, len(img.BlockDeviceMappings))
		}
	}
}
