// The `image` subcommand: images built by containers/image's own copy.Image, for the tests
// of `diffid image`. Layers are given as files (any compression containers/image can put in
// an OCI manifest: none, gzip, zstd); the tarball: transport turns them into an image, whose
// config rootfs.diff_ids containers/image computes itself, and copy.Image writes it as
//
//	OUT/oci                an OCI layout (oci:OUT/oci:NAME)
//	OUT/oci-archive.tar    an oci-archive (oci-archive:OUT/oci-archive.tar:NAME)
//	OUT/docker-archive.tar a docker save archive (docker-archive:...:example.com/NAME:latest)
//	OUT/multi              with -platforms: an OCI layout whose index lists one image per
//	OUT/multi.tar          platform (and the same as an oci-archive), copied with CopyAllImages
//
// Usage: oracle image -out OUT [-name NAME] [-platforms linux/amd64,linux/arm64/v8] LAYER...
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/docker/reference"
	dockerarchive "github.com/containers/image/v5/docker/archive"
	ociarchive "github.com/containers/image/v5/oci/archive"
	ocilayout "github.com/containers/image/v5/oci/layout"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/tarball"
	"github.com/containers/image/v5/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func imageMain(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	out := fs.String("out", "", "output directory")
	name := fs.String("name", "test", "image name (lowercase)")
	platforms := fs.String("platforms", "", "comma-separated OS/ARCH[/VARIANT]: also build a multi-platform index")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: oracle image -out DIR [-name NAME] [-platforms P1,P2] LAYER...")
	}
	layers := fs.Args()
	for i, l := range layers {
		abs, err := filepath.Abs(l)
		if err != nil {
			return err
		}
		layers[i] = abs
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	policy, err := signature.NewPolicyContext(&signature.Policy{
		Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()},
	})
	if err != nil {
		return err
	}
	defer policy.Destroy()

	src, err := tarballRef(layers, imgspecv1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return err
	}
	dests := []func() (types.ImageReference, error){
		func() (types.ImageReference, error) {
			return ocilayout.NewReference(filepath.Join(*out, "oci"), *name)
		},
		func() (types.ImageReference, error) {
			return ociarchive.NewReference(filepath.Join(*out, "oci-archive.tar"), *name)
		},
		func() (types.ImageReference, error) {
			named, err := reference.ParseNormalizedNamed("example.com/" + *name + ":latest")
			if err != nil {
				return nil, err
			}
			return dockerarchive.NewReference(filepath.Join(*out, "docker-archive.tar"), named.(reference.NamedTagged))
		},
	}
	for _, mk := range dests {
		dest, err := mk()
		if err != nil {
			return err
		}
		if _, err := copy.Image(ctx, policy, dest, src, &copy.Options{}); err != nil {
			return fmt.Errorf("copy to %s: %w", transportsName(dest), err)
		}
	}
	if *platforms != "" {
		return buildIndex(ctx, policy, *out, layers, strings.Split(*platforms, ","))
	}
	return nil
}

func transportsName(ref types.ImageReference) string {
	return ref.Transport().Name() + ":" + ref.StringWithinTransport()
}

func tarballRef(layers []string, p imgspecv1.Platform) (types.ImageReference, error) {
	ref, err := tarball.NewReference(layers, nil)
	if err != nil {
		return nil, err
	}
	config := imgspecv1.Image{Platform: p}
	if err := ref.(tarball.ConfigUpdater).ConfigUpdate(config, nil); err != nil {
		return nil, err
	}
	return ref, nil
}

// buildIndex copies one image per platform into OUT/src, lists them in an image index with
// their platforms (the one file written here, with the spec's Go types), and has copy.Image
// copy the whole list to OUT/multi and OUT/multi.tar.
func buildIndex(ctx context.Context, policy *signature.PolicyContext, out string, layers []string, platforms []string) error {
	srcDir := filepath.Join(out, "src")
	var descs []imgspecv1.Descriptor
	for i, p := range platforms {
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("bad platform %q", p)
		}
		plat := imgspecv1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			plat.Variant = parts[2]
		}
		src, err := tarballRef(layers, plat)
		if err != nil {
			return err
		}
		dest, err := ocilayout.NewReference(srcDir, fmt.Sprintf("p%d", i))
		if err != nil {
			return err
		}
		manifest, err := copy.Image(ctx, policy, dest, src, &copy.Options{})
		if err != nil {
			return err
		}
		descs = append(descs, imgspecv1.Descriptor{
			MediaType: imgspecv1.MediaTypeImageManifest,
			Digest:    digest.FromBytes(manifest),
			Size:      int64(len(manifest)),
			Platform:  &plat,
		})
	}
	index := imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: descs,
	}
	data, err := json.Marshal(index)
	if err != nil {
		return err
	}
	d := digest.FromBytes(data)
	if err := os.WriteFile(filepath.Join(srcDir, "blobs", "sha256", d.Encoded()), data, 0o644); err != nil {
		return err
	}
	top := imgspecv1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{
			MediaType:   imgspecv1.MediaTypeImageIndex,
			Digest:      d,
			Size:        int64(len(data)),
			Annotations: map[string]string{imgspecv1.AnnotationRefName: "multi"},
		}},
	}
	topData, err := json.Marshal(top)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(srcDir, "index.json"), topData, 0o644); err != nil {
		return err
	}
	src, err := ocilayout.NewReference(srcDir, "multi")
	if err != nil {
		return err
	}
	for _, mk := range []func() (types.ImageReference, error){
		func() (types.ImageReference, error) { return ocilayout.NewReference(filepath.Join(out, "multi"), "multi") },
		func() (types.ImageReference, error) {
			return ociarchive.NewReference(filepath.Join(out, "multi.tar"), "multi")
		},
	} {
		dest, err := mk()
		if err != nil {
			return err
		}
		if _, err := copy.Image(ctx, policy, dest, src, &copy.Options{ImageListSelection: copy.CopyAllImages}); err != nil {
			return fmt.Errorf("copy the index to %s: %w", transportsName(dest), err)
		}
	}
	return os.RemoveAll(srcDir)
}
