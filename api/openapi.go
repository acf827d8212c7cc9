package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
)

// openAPIDoc is the OpenAPI 3.1 description of every route and answer of
// Handler, served at /api/openapi.json. Tests check it against the router
// (every route in it and vice versa), the registered statistics (a schema
// each) and the answers the handlers and the e2e suite get; scripts/fuzz-api
// fuzzes a running picstats with it.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPIETag is the document's strong ETag, from its content.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPIDoc)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// openAPIPath is the document's route in Handler.
const openAPIPath = "/api/openapi.json"

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag changes with each build that changes it
	h.Set("ETag", openAPIETag)
	if r.Header.Get("If-None-Match") == openAPIETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(openAPIDoc) // the client may have gone; nothing to do about it
	}
}

// OpenAPIDocument returns the OpenAPI description served at
// /api/openapi.json (for tests that check answers against it).
func OpenAPIDocument() []byte { return append([]byte(nil), openAPIDoc...) }
