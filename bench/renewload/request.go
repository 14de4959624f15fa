package main

import (
	"bytes"
	"fmt"
	"strconv"
)

// buildPost serializes an HTTP/1.1 POST of body to path on host, with
// bearer as the Authorization if not empty, and Connection: close if
// closing.
func buildPost(host, path, bearer, contentType string, body []byte, closing bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: renewload\r\n", path, host)
	if bearer != "" {
		b.WriteString("Authorization: Bearer " + bearer + "\r\n")
	}
	if contentType != "" {
		b.WriteString("Content-Type: " + contentType + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if closing {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}
