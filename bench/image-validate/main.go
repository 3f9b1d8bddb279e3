// image-validate runs go-containerregistry's validate.Image, what `crane validate` runs, on
// every image of an OCI image layout directory or on a `docker save` archive: the bench row
// that `diffid image` is compared with (bench/image.py).
//
//	image-validate PATH
//
// Prints "ok" and exits 0 when every image validates; prints the error and exits 1 otherwise.
package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: image-validate PATH (an OCI layout or a docker save archive)")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

func check(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		img, err := tarball.ImageFromPath(path, nil) // the first (only) image of the archive
		if err != nil {
			return err
		}
		return validate.Image(img)
	}
	idx, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return err
	}
	// Every image of the index (and of nested indexes), each through validate.Image.
	return validate.Index(idx)
}
