// Command importer turns layer tarballs into an OCI image layout, as `podman import` does,
// with the digests computed by diffid.
//
//	importer [-o DIR] [-tag TAG] [-os OS] [-arch ARCH] [-variant V] [-message MSG] TARBALL...
//
// Each TARBALL (gzip, bzip2, xz, zstd or plain tar; "-" for standard input) becomes one
// layer. The image config (rootfs.diff_ids, history, created) and the manifest (layer
// descriptors: media type, digest, size) are those containers/image's tarball: transport
// (v5.34.3 and later) produces for the same files, byte for byte. The layout can then be
// used as oci:DIR:TAG by skopeo, podman and buildah.
package main

import (
	"flag"
	"fmt"
	"os"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	dir := flag.String("o", "image", "output directory (an OCI image layout)")
	tag := flag.String("tag", "latest", "tag of the image in the layout")
	goos := flag.String("os", "", "image OS (default: this system's)")
	arch := flag.String("arch", "", "image architecture (default: this system's)")
	variant := flag.String("variant", "", "image architecture variant")
	message := flag.String("message", "", `history comment (default "imported from tarball")`)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags] TARBALL...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	// What podman import (containers/common libimage.Import) hands the tarball transport.
	config := imgspecv1.Image{
		Platform: imgspecv1.Platform{OS: *goos, Architecture: *arch, Variant: *variant},
		History:  []imgspecv1.History{{Comment: *message}},
	}
	img, err := BuildImage(flag.Args(), os.Stdin, config, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "importer:", err)
		os.Exit(1)
	}
	if err := img.WriteLayout(*dir, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "importer:", err)
		os.Exit(1)
	}
	for i, l := range img.Manifest.Layers {
		fmt.Printf("layer %s %s %d diff_id %s\n", l.MediaType, l.Digest, l.Size, img.Config.RootFS.DiffIDs[i])
	}
	fmt.Printf("config %s\nwritten to %s:%s\n", img.Manifest.Config.Digest, *dir, *tag)
}
