package blockmap_test

import (
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/diskimage"
)

// A View is what the exporter reads.
var _ diskimage.Source = (*blockmap.View)(nil)
