package diskimage

import (
	"errors"
	"syscall"
)

// isENXIO reports lseek's "no more data" answer for SEEK_DATA.
func isENXIO(err error) bool { return errors.Is(err, syscall.ENXIO) }
