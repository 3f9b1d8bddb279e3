package diffid_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"diffid.dev/go/diffid"
)

func ExampleDigestBytes() {
	var blob bytes.Buffer
	zw := gzip.NewWriter(&blob)
	zw.Write([]byte("not really a tar"))
	zw.Close()

	res, err := diffid.DigestBytes(blob.Bytes())
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Format, res.MediaType)
	fmt.Println(res.DiffID, res.DiffSize)
	fmt.Println(res.Tar.Valid)
	// Output:
	// gzip application/vnd.oci.image.layer.v1.tar+gzip
	// sha256:5e9a5ec87ab511bc877cf1fc7950c3caffb902cb2cfe1f682401a976907014bc 16
	// false
}

func ExampleNewWriter() {
	w, err := diffid.NewWriter()
	if err != nil {
		panic(err)
	}
	defer w.Close()
	io.WriteString(w, "")
	if err := w.Close(); err != nil {
		panic(err)
	}
	res, _ := w.Result()
	fmt.Println(res.Format, res.BlobDigest)
	// Output:
	// none sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
}

func ExampleError() {
	_, err := diffid.DigestBytes([]byte{0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff}) // a gzip header, then nothing
	fmt.Println(errors.Is(err, diffid.ErrTruncated))
	// Output:
	// true
}
