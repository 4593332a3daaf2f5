// Command omi is the OUTSCALE machine image service in one binary.
//
//	omi serve [flags]                 run the API (see omi serve -h)
//	omi image inspect <ami-id>        show the hygiene inspection of an OMI
//	omi image build small|debian      build a bootable official image from Debian packages
//	omi image import FILE --name NAME publish a local qcow2 or raw disk as an OMI
//	omi catalog publish --preset NAME publish a new version of an official OMI
//	omi version                       print the version
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "image":
		err = imageCmd(os.Args[2:])
	case "catalog":
		err = catalogCmd(os.Args[2:])
	case "imds-proxy":
		os.Exit(imdsProxy(os.Args[2:]))
	case "version", "--version", "-v":
		fmt.Println("omi", version)
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "omi: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "omi:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: omi <command> [flags]

commands:
  serve              run the OUTSCALE API (omi serve -h lists the flags)
  image inspect ID   show the hygiene inspection of an OMI (reads OSC_* credentials)
  image build KIND   build a bootable official image (small or debian) from Debian packages
  image import FILE  publish a local qcow2 or raw disk as an OMI (omi serve stopped)
  catalog publish    publish a new version of an official OMI (omi serve stopped)
  version            print the version
`)
}
