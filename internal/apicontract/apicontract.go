// Package apicontract checks HTTP answers against the API's OpenAPI
// description (api/openapi.json) with kin-openapi's openapi3filter: the
// status must be documented for the route and method, and the documented
// headers and body schema must hold. Answers to a path no route has must be
// the documented 404, to a method a route does not answer the documented
// 405 with Allow. Only tests use it.
package apicontract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Validator checks answers against one OpenAPI document.
type Validator struct {
	Doc    *openapi3.T
	router routers.Router
}

// New loads and validates an OpenAPI document (3.0 or 3.1; 3.1 schemas are
// checked as JSON Schema 2020-12).
func New(spec []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &Validator{Doc: doc, router: r}, nil
}

// Check returns how an answer to req (status, header, body) breaks the
// document, or nil if it does not.
func (v *Validator) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := v.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return v.checkGeneric(req, "NotFound", http.StatusNotFound, status, header, body)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if err := v.checkGeneric(req, "MethodNotAllowed", http.StatusMethodNotAllowed, status, header, body); err != nil {
			return err
		}
		return v.checkAllow(req, header.Get("Allow"))
	case err != nil:
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	if route.Operation.Responses.Status(status) == nil {
		return fmt.Errorf("%s %s answered %d, which the document does not list for %s %s",
			req.Method, req.URL.Path, status, req.Method, route.Path)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d %s: %w", req.Method, req.URL.Path, status, clip(body), err)
	}
	return nil
}

// checkGeneric checks an answer against one of components/responses, the
// answers any path may give.
func (v *Validator) checkGeneric(req *http.Request, name string, want, status int, header http.Header, body []byte) error {
	if status != want {
		return fmt.Errorf("%s %s: the document has no such operation, so the answer must be %d, not %d %s",
			req.Method, req.URL.Path, want, status, clip(body))
	}
	ref := v.Doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("the document has no components/responses/%s", name)
	}
	for h, hr := range ref.Value.Headers {
		if hr.Value.Required && header.Get(h) == "" {
			return fmt.Errorf("%s %s answered %d without the header %s", req.Method, req.URL.Path, status, h)
		}
	}
	if req.Method == http.MethodHead {
		return nil
	}
	mt := ref.Value.Content.Get(header.Get("Content-Type"))
	if mt == nil {
		return fmt.Errorf("%s %s answered %d with Content-Type %q, not the documented one", req.Method, req.URL.Path, status, header.Get("Content-Type"))
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Errorf("%s %s answered %d %s: %w", req.Method, req.URL.Path, status, clip(body), err)
	}
	if err := mt.Schema.Value.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("%s %s answered %d %s: %w", req.Method, req.URL.Path, status, clip(body), err)
	}
	return nil
}

// checkAllow checks that a 405's Allow header lists the methods the
// document has for the path, and no other.
func (v *Validator) checkAllow(req *http.Request, allow string) error {
	var item *openapi3.PathItem
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		probe := req.Clone(req.Context())
		probe.Method = m
		if route, _, err := v.router.FindRoute(probe); err == nil {
			item = route.PathItem
			break
		}
	}
	if item == nil {
		return fmt.Errorf("%s %s: no operation of the path found to check Allow %q against", req.Method, req.URL.Path, allow)
	}
	var want []string
	for m := range item.Operations() {
		want = append(want, m)
	}
	var got []string
	for m := range strings.SplitSeq(allow, ",") {
		if m = strings.TrimSpace(m); m != "" {
			got = append(got, m)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s %s answered 405 with Allow %q; the document has %s", req.Method, req.URL.Path, allow, strings.Join(want, ", "))
	}
	return nil
}

// CheckResponse checks resp, an answer to its Request, and leaves its body
// readable again. It reads the whole body.
func (v *Validator) CheckResponse(resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return v.Check(resp.Request, resp.StatusCode, resp.Header, body)
}

// Transport is an http.RoundTripper that checks every answer against the
// document: an answer that breaks it is returned as an error instead, and
// reported to OnMismatch.
type Transport struct {
	Base       http.RoundTripper // nil: http.DefaultTransport
	Validator  *Validator
	OnMismatch func(error) // may be nil

	mu         sync.Mutex
	mismatches []error
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if err := t.Validator.CheckResponse(resp); err != nil {
		err = fmt.Errorf("the answer breaks api/openapi.json: %w", err)
		t.mu.Lock()
		t.mismatches = append(t.mismatches, err)
		t.mu.Unlock()
		if t.OnMismatch != nil {
			t.OnMismatch(err)
		}
		return nil, err
	}
	return resp, nil
}

// Mismatches returns the mismatches seen so far.
func (t *Transport) Mismatches() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]error(nil), t.mismatches...)
}

func clip(body []byte) string {
	if len(body) > 300 {
		return string(body[:300]) + "…"
	}
	return string(body)
}
