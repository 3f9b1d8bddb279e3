package main

// The drop-in test: the importer's config and manifest, with digests from diffid, equal
// what containers/image's own tarball: transport (the fixed one, v5.36.2 here) produces for
// the same gzip, xz, zstd, bzip2 and plain tarballs, byte for byte.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/containers/image/v5/oci/layout"
	"github.com/containers/image/v5/tarball"
	"github.com/containers/image/v5/types"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/ulikunitz/xz"
)

func testTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, f := range []struct{ name, body string }{
		{"etc/os-release", "NAME=diffid\n"},
		{"usr/bin/hello", string(bytes.Repeat([]byte("#!/bin/sh\necho hello\n"), 5000))},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarballs writes the test tar in every format; formats whose compressor is missing are
// skipped (bzip2 has no Go encoder, so it needs the bzip2 program).
func tarballs(t *testing.T) map[string]string {
	t.Helper()
	plain := testTar(t)
	dir := t.TempDir()
	out := map[string]string{}
	put := func(name string, data []byte) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// distinct, fixed mtimes: the config's created and history times come from them
		mtime := time.Date(2025, 1, 1, 0, 0, len(out), 123456789, time.UTC)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		out[name] = path
	}
	put("layer.tar", plain)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	put("layer.tar.gz", gz.Bytes())

	var xzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()
	put("layer.tar.xz", xzb.Bytes())

	enc, _ := zstd.NewWriter(nil)
	put("layer.tar.zst", enc.EncodeAll(plain, nil))
	enc.Close()

	if _, err := exec.LookPath("bzip2"); err == nil {
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(plain)
		bz, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		put("layer.tar.bz2", bz)
	} else {
		t.Log("bzip2 is not installed: no bzip2 layer")
	}
	return out
}

// transportImage is what containers/image's tarball: transport makes of the files.
func transportImage(t *testing.T, files []string, stdin []byte, config imgspecv1.Image, annotations map[string]string) (manifestBytes, configBytes []byte) {
	t.Helper()
	ctx := context.Background()
	ref, err := tarball.NewReference(files, stdin)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.(tarball.ConfigUpdater).ConfigUpdate(config, annotations); err != nil {
		t.Fatal(err)
	}
	src, err := ref.NewImageSource(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	manifestBytes, mt, err := src.GetManifest(ctx, nil)
	if err != nil || mt != imgspecv1.MediaTypeImageManifest {
		t.Fatalf("GetManifest: %q %v", mt, err)
	}
	var m imgspecv1.Manifest
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		t.Fatal(err)
	}
	rc, _, err := src.GetBlob(ctx, types.BlobInfo{Digest: m.Config.Digest, Size: m.Config.Size}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	configBytes, err = io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return manifestBytes, configBytes
}

// compareWithTransport checks the importer's image against the transport's, field by field
// for readable failures, then byte for byte.
func compareWithTransport(t *testing.T, img *Image, manifestBytes, configBytes []byte, exactBytes bool) {
	t.Helper()
	var m imgspecv1.Manifest
	var c imgspecv1.Image
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(configBytes, &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(img.Config.RootFS, c.RootFS) {
		t.Errorf("rootfs: importer %+v, tarball transport %+v", img.Config.RootFS, c.RootFS)
	}
	if !reflect.DeepEqual(img.Manifest.Layers, m.Layers) {
		t.Errorf("layers: importer %+v, tarball transport %+v", img.Manifest.Layers, m.Layers)
	}
	if exactBytes {
		if !bytes.Equal(img.ConfigBytes, configBytes) {
			t.Errorf("config differs:\nimporter:  %s\ntransport: %s", img.ConfigBytes, configBytes)
		}
		if !bytes.Equal(img.ManifestBytes, manifestBytes) {
			t.Errorf("manifest differs:\nimporter:  %s\ntransport: %s", img.ManifestBytes, manifestBytes)
		}
	}
}

func TestImporterMatchesTarballTransport(t *testing.T) {
	files := tarballs(t)
	plainDigest := digest.FromBytes(testTar(t))
	wantMediaType := map[string]string{
		"layer.tar":     imgspecv1.MediaTypeImageLayer,
		"layer.tar.gz":  imgspecv1.MediaTypeImageLayerGzip,
		"layer.tar.zst": imgspecv1.MediaTypeImageLayerZstd,
		"layer.tar.xz":  imgspecv1.MediaTypeImageLayerGzip, // as containers/image does
		"layer.tar.bz2": imgspecv1.MediaTypeImageLayerGzip,
	}
	configs := map[string]imgspecv1.Image{
		"defaults": {},
		"podman import --os --arch --message": {
			Platform: imgspecv1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
			History:  []imgspecv1.History{{Comment: "imported by a test"}},
			Config:   imgspecv1.ImageConfig{Env: []string{"PATH=/usr/bin"}, Cmd: []string{"/usr/bin/hello"}},
		},
	}
	agreed := 0
	for name, path := range files {
		for cname, config := range configs {
			t.Run(name+"/"+cname, func(t *testing.T) {
				annotations := map[string]string{"org.example.test": cname}
				img, err := BuildImage([]string{path}, nil, config, annotations)
				if err != nil {
					t.Fatal(err)
				}
				manifestBytes, configBytes := transportImage(t, []string{path}, nil, config, annotations)
				compareWithTransport(t, img, manifestBytes, configBytes, true)
				// The podman import bug of containers/image < v5.34.3: the DiffID must be the
				// digest of the tar, not of the compressed file.
				if got := img.Config.RootFS.DiffIDs[0]; got != plainDigest {
					t.Errorf("diff_id %s, want the digest of the tar %s", got, plainDigest)
				}
				if got := img.Manifest.Layers[0].MediaType; got != wantMediaType[name] {
					t.Errorf("media type %s, want %s", got, wantMediaType[name])
				}
				if !t.Failed() {
					agreed++
				}
			})
		}
	}

	// All formats as the layers of one image, in a fixed order.
	var all []string
	for _, name := range []string{"layer.tar", "layer.tar.gz", "layer.tar.xz", "layer.tar.zst", "layer.tar.bz2"} {
		if p, ok := files[name]; ok {
			all = append(all, p)
		}
	}
	t.Run("all-formats-one-image", func(t *testing.T) {
		img, err := BuildImage(all, nil, imgspecv1.Image{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		manifestBytes, configBytes := transportImage(t, all, nil, imgspecv1.Image{}, nil)
		compareWithTransport(t, img, manifestBytes, configBytes, true)
		if !t.Failed() {
			agreed++
		}
	})

	// Standard input: the creation time is "now" on both sides, so only the digests and
	// descriptors can be compared.
	t.Run("stdin", func(t *testing.T) {
		data, err := os.ReadFile(files["layer.tar.zst"])
		if err != nil {
			t.Fatal(err)
		}
		img, err := BuildImage([]string{"-", files["layer.tar.gz"]}, bytes.NewReader(data), imgspecv1.Image{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		manifestBytes, configBytes := transportImage(t, []string{"-", files["layer.tar.gz"]}, data, imgspecv1.Image{}, nil)
		compareWithTransport(t, img, manifestBytes, configBytes, false)
		if !t.Failed() {
			agreed++
		}
	})
	t.Logf("importer vs containers/image tarball: transport: %d images agreed (%d single-layer, one with all %d formats, one from stdin)",
		agreed, len(files)*len(configs), len(all))
}

// TestLayoutReadsBack: containers/image's own oci: transport reads the written layout, and
// finds the same manifest, config and layer blobs.
func TestLayoutReadsBack(t *testing.T) {
	files := tarballs(t)
	var paths []string
	for _, p := range files {
		paths = append(paths, p)
	}
	img, err := BuildImage(paths, nil, imgspecv1.Image{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := img.WriteLayout(dir, "v1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, err := layout.NewReference(dir, "v1")
	if err != nil {
		t.Fatal(err)
	}
	src, err := ref.NewImageSource(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	manifestBytes, _, err := src.GetManifest(ctx, nil)
	if err != nil || !bytes.Equal(manifestBytes, img.ManifestBytes) {
		t.Fatalf("manifest read back: %v\n%s", err, manifestBytes)
	}
	for _, d := range append([]imgspecv1.Descriptor{img.Manifest.Config}, img.Manifest.Layers...) {
		rc, size, err := src.GetBlob(ctx, types.BlobInfo{Digest: d.Digest, Size: d.Size}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := digest.FromReader(rc)
		rc.Close()
		if err != nil || got != d.Digest || size != d.Size {
			t.Errorf("blob %s: read back %s size %d (%v)", d.Digest, got, size, err)
		}
	}
}

// TestImporterRejectsCorruptLayer: a layer that containers/image cannot decode is an error,
// not an image with a wrong DiffID.
func TestImporterRejectsCorruptLayer(t *testing.T) {
	files := tarballs(t)
	data, _ := os.ReadFile(files["layer.tar.gz"])
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, data[:len(data)/2], 0o644)
	if _, err := BuildImage([]string{bad}, nil, imgspecv1.Image{}, nil); err == nil {
		t.Error("a truncated layer was imported")
	}
	ref, _ := tarball.NewReference([]string{bad}, nil)
	if _, err := ref.NewImageSource(context.Background(), nil); err == nil {
		t.Error("containers/image accepts the truncated layer: the test's premise is wrong")
	}
}
