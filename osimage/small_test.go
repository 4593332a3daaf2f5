package osimage_test

import (
	"testing"

	"github.com/omiproject/omi/osimage/osimagetest"
)

func TestBuildSmall(t *testing.T) {
	p := osimagetest.Small(t)
	t.Log(p)
}
