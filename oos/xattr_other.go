//go:build !linux

package oos

import "errors"

// setXattr is not attempted off Linux: metadata goes to the sidecar tree.
func setXattr(path, name string, value []byte) error {
	return errors.New("extended attributes not probed on this platform")
}
