package main

import (
	"bytes"
	_ "crypto/sha256" // go-digest's digest.Canonical needs it registered
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"diffid.dev/go/diffid"
)

// Image is an image built from layer tarballs: its config and manifest, as values and as
// the exact bytes whose digests the manifest and the layout refer to.
type Image struct {
	Config        imgspecv1.Image
	ConfigBytes   []byte
	Manifest      imgspecv1.Manifest
	ManifestBytes []byte
	layers        []layerSource
}

// layerSource is where a layer blob's bytes are: a file, or the buffered standard input.
type layerSource struct {
	desc     imgspecv1.Descriptor
	filename string
	contents []byte
}

// BuildImage makes a one-layer-per-file image from tarballs (any of gzip, bzip2, xz, zstd or
// uncompressed; "-" reads standard input), exactly as containers/image's tarball transport
// (tarball/tarball_src.go, v5.34.3 and later) and so `podman import` do. config supplies
// what podman import's --change, --message, --os and --arch would; the layers' digests,
// rootfs.diff_ids, history and creation time are filled in here.
//
// Where tarball_src.go tees each file through a SHA-256 digester, a decompressor chosen by
// compression.DetectCompressionFormat and a second digester, this calls diffid once per
// file: the same answers, in one multi-threaded pass.
func BuildImage(filenames []string, stdin io.Reader, config imgspecv1.Image, annotations map[string]string) (*Image, error) {
	// Pick up the layer comment from the configuration's history list, if one is set.
	comment := "imported from tarball"
	if len(config.History) > 0 && config.History[0].Comment != "" {
		comment = config.History[0].Comment
	}

	img := &Image{}
	var diffIDs []digest.Digest
	var history []imgspecv1.History
	created := time.Time{}
	var stdinBytes []byte
	for _, filename := range filenames {
		var res *diffid.Result
		var blobTime time.Time
		src := layerSource{filename: filename}
		if filename == "-" {
			if stdinBytes == nil {
				b, err := io.ReadAll(stdin)
				if err != nil {
					return nil, fmt.Errorf("error buffering stdin: %w", err)
				}
				stdinBytes = b
			}
			var err error
			if res, err = diffid.DigestBytes(stdinBytes); err != nil {
				return nil, fmt.Errorf("error reading %q: %w", filename, err)
			}
			blobTime = time.Now()
			src.contents = stdinBytes
		} else {
			fileinfo, err := os.Stat(filename)
			if err != nil {
				return nil, err
			}
			// The one call that replaces the tee/decompress/digest code.
			if res, err = diffid.DigestFile(filename); err != nil {
				return nil, fmt.Errorf("error reading %q: %w", filename, err)
			}
			blobTime = fileinfo.ModTime()
		}

		diffIDs = append(diffIDs, res.DiffID)
		history = append(history, imgspecv1.History{
			Created:   &blobTime,
			CreatedBy: fmt.Sprintf("/bin/sh -c #(nop) ADD file:%s in %c", res.DiffID.Encoded(), os.PathSeparator),
			Comment:   comment,
		})
		// Use the mtime of the most recently modified file as the image's creation time.
		if created.Before(blobTime) {
			created = blobTime
		}
		src.desc = imgspecv1.Descriptor{
			MediaType: res.MediaType, // +gzip for gzip, bzip2 and xz, +zstd, or plain tar
			Digest:    res.BlobDigest,
			Size:      res.BlobSize,
		}
		img.layers = append(img.layers, src)
	}

	// Pick up other defaults from the config passed in.
	if config.Created == nil {
		config.Created = &created
	}
	if config.Architecture == "" {
		config.Architecture = runtime.GOARCH
	}
	if config.OS == "" {
		config.OS = runtime.GOOS
	}
	config.RootFS = imgspecv1.RootFS{Type: "layers", DiffIDs: diffIDs}
	config.History = history

	configBytes, err := json.Marshal(&config)
	if err != nil {
		return nil, fmt.Errorf("error generating configuration blob: %w", err)
	}
	layerDescriptors := make([]imgspecv1.Descriptor, 0, len(img.layers))
	for _, l := range img.layers {
		layerDescriptors = append(layerDescriptors, l.desc)
	}
	manifest := imgspecv1.Manifest{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		Config: imgspecv1.Descriptor{
			MediaType: imgspecv1.MediaTypeImageConfig,
			Digest:    digest.Canonical.FromBytes(configBytes),
			Size:      int64(len(configBytes)),
		},
		Layers:      layerDescriptors,
		Annotations: maps.Clone(annotations),
	}
	manifestBytes, err := json.Marshal(&manifest)
	if err != nil {
		return nil, fmt.Errorf("error generating manifest: %w", err)
	}
	img.Config, img.ConfigBytes = config, configBytes
	img.Manifest, img.ManifestBytes = manifest, manifestBytes
	return img, nil
}

// WriteLayout writes img as an OCI image layout in dir (created if needed): the layer
// blobs, the config, the manifest, index.json naming the manifest tag, and oci-layout.
func (img *Image) WriteLayout(dir, tag string) error {
	writeBlob := func(d digest.Digest, r io.Reader) error {
		path := filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
		if _, err := os.Stat(path); err == nil {
			return nil // content-addressed: already there
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if _, err := io.Copy(tmp, r); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), path)
	}
	for _, l := range img.layers {
		var r io.Reader = bytes.NewReader(l.contents)
		if l.contents == nil {
			f, err := os.Open(l.filename)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		if err := writeBlob(l.desc.Digest, r); err != nil {
			return err
		}
	}
	if err := writeBlob(img.Manifest.Config.Digest, bytes.NewReader(img.ConfigBytes)); err != nil {
		return err
	}
	manifestDigest := digest.Canonical.FromBytes(img.ManifestBytes)
	if err := writeBlob(manifestDigest, bytes.NewReader(img.ManifestBytes)); err != nil {
		return err
	}
	desc := imgspecv1.Descriptor{
		MediaType: imgspecv1.MediaTypeImageManifest,
		Digest:    manifestDigest,
		Size:      int64(len(img.ManifestBytes)),
	}
	if tag != "" {
		desc.Annotations = map[string]string{imgspecv1.AnnotationRefName: tag}
	}
	index, err := json.Marshal(imgspecv1.Index{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{desc},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, imgspecv1.ImageIndexFile), index, 0o644); err != nil {
		return err
	}
	layout, _ := json.Marshal(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
	return os.WriteFile(filepath.Join(dir, imgspecv1.ImageLayoutFile), layout, 0o644)
}
