package catalog_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/catalog"
)

// BenchmarkBuildDisk measures generating each preset into a sparse file.
func BenchmarkBuildDisk(b *testing.B) {
	for _, p := range catalog.Presets() {
		b.Run(p.Name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "disk.img")
			for b.Loop() {
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				if err := catalog.BuildDisk(context.Background(), f, p.Spec); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// BenchmarkBuildDiskMemory leaves out the host file system.
func BenchmarkBuildDiskMemory(b *testing.B) {
	p, err := catalog.LookupPreset("Debian-12")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := catalog.BuildDisk(context.Background(), discard{}, p.Spec); err != nil {
			b.Fatal(err)
		}
	}
}
