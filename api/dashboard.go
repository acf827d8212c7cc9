package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
)

// The dashboard is plain HTML, CSS and one JavaScript file, embedded in the
// binary: no build step, nothing fetched from another host. The page reads
// /api/statistics for the tiles and /api/ws for the values.
//
//go:embed web
var webFiles embed.FS

// web is the embedded folder itself: "index.html", "app.js", "style.css".
var web = func() fs.FS {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	return sub
}()

// webETags holds a strong ETag per embedded file, from its content: embedded
// files have no modification time to revalidate by.
var webETags = func() map[string]string {
	tags := map[string]string{}
	err := fs.WalkDir(web, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[name] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	if err != nil {
		panic(err)
	}
	return tags
}()

// dashboardCSP keeps the page to its own origin: its script, its style, its
// thumbnails and its websocket.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", dashboardCSP)
	s.serveWeb(w, r, "index.html")
}

// static serves /static/{file} from the embedded folder; no listings.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if !fs.ValidPath(name) || name == "." {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no file %s", r.URL.Path))
		return
	}
	s.serveWeb(w, r, name)
}

func (s *Server) serveWeb(w http.ResponseWriter, r *http.Request, name string) {
	tag, ok := webETags[name] // regular files only
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no file %s", r.URL.Path))
		return
	}
	f, err := web.Open(name)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no file %s", r.URL.Path))
		return
	}
	defer f.Close()
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag changes with each build that changes the file
	h.Set("ETag", tag)
	http.ServeContent(w, r, name, time.Time{}, f.(io.ReadSeeker)) // embed.FS files seek
}

// ServeImages serves the pictures of folder dir at /images/{id}.jpg, the
// dashboard's thumbnails. Until it is called, /images answers 404. The folder
// is opened per request, inside dir only (os.Root): it may be missing at
// start and appear later.
func (s *Server) ServeImages(dir string) {
	if dir == "" {
		s.images.Store(nil)
		return
	}
	s.images.Store(&dir)
}

// imageName is what a picture's file name may be: a picture id and ".jpg".
var imageName = regexp.MustCompile(`^[A-Za-z0-9_.-]+\.jpg$`)

// withImages sends /images/... to s.image before the router sees it: gorilla/mux
// would answer a path with ".." in it with a redirect to its cleaned form; a
// picture path is either a plain file name or a 404.
func (s *Server) withImages(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/images/") {
			if rec, ok := w.(*recorder); ok {
				rec.route = imagesRoute
			}
			s.image(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use GET", r.Method))
		return
	}
	dir := s.images.Load()
	if dir == nil {
		writeError(w, http.StatusNotFound, "no images folder is configured")
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/images/")
	if !imageName.MatchString(name) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no picture %q: want /images/{picture id}.jpg", name))
		return
	}
	f, err := os.OpenInRoot(*dir, name) // no way out of the folder, symbolic links included
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger.Warn("serving a picture", "file", name, "err", err)
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no picture %s", name))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no picture %s", name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=86400, immutable")
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()))
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
