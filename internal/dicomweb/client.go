package dicomweb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client is a STOW-RS client.
type Client struct {
	// BaseURL is the service root, e.g. "http://localhost:8080/dicomweb".
	BaseURL string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
	// Header is added to every request (e.g. Authorization).
	Header http.Header
}

// StatusError is a response whose status is not a STOW outcome (200, 202,
// 409): 400, 413, 415, 503, ... with the server's reason.
type StatusError struct {
	StatusCode int
	Message    string        // the server's reason ({"error": ...} or Warning)
	RetryAfter time.Duration // from Retry-After (503), 0 when absent
	// Partial holds the per-part outcome when the server sent one.
	Partial *StoreResponse
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dicomweb: HTTP %d: %s", e.StatusCode, e.Message)
}

// Store sends instances (Part 10 bytes, streamed) in one multipart/related
// request to /studies, or /studies/{study} when study is non-empty. For 200
// (all stored), 202 (some failed) and 409 (all failed) it returns the
// parsed response with HTTPStatus set and a nil error; other statuses give
// a *StatusError. Each reader is read once, in order.
func (c *Client) Store(ctx context.Context, study string, instances ...io.Reader) (*StoreResponse, error) {
	url := strings.TrimRight(c.BaseURL, "/") + "/studies"
	if study != "" {
		url += "/" + study
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", MediaDICOM)
		for _, in := range instances {
			part, err := mw.CreatePart(h)
			if err == nil {
				_, err = io.Copy(part, in)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		pr.Close()
		return nil, err
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, mw.Boundary()))
	req.Header.Set("Accept", MediaDICOMJSON)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	pr.Close()
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseStoreHTTP(resp)
}

// StoreFiles is Store with the files at paths.
func (c *Client) StoreFiles(ctx context.Context, study string, paths ...string) (*StoreResponse, error) {
	readers := make([]io.Reader, len(paths))
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		readers[i] = f
	}
	return c.Store(ctx, study, readers...)
}

func parseStoreHTTP(resp *http.Response) (*StoreResponse, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: reading STOW response: %w", err)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var out *StoreResponse
	if mt == MediaDICOMJSON || mt == "application/json" && strings.HasPrefix(strings.TrimSpace(string(body)), `{"0008`) {
		var d Dataset
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, fmt.Errorf("dicomweb: decoding STOW response (HTTP %d): %w", resp.StatusCode, err)
		}
		r := ParseStoreResponse(d)
		r.HTTPStatus = resp.StatusCode
		r.Warning = resp.Header.Get("Warning")
		out = &r
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted, http.StatusConflict:
		if out == nil {
			return nil, fmt.Errorf("dicomweb: STOW response HTTP %d is %q, not %s", resp.StatusCode, mt, MediaDICOMJSON)
		}
		return out, nil
	}
	se := &StatusError{StatusCode: resp.StatusCode, Partial: out}
	var e struct {
		Error string `json:"error"`
	}
	if out == nil && json.Unmarshal(body, &e) == nil && e.Error != "" {
		se.Message = e.Error
	} else if w := resp.Header.Get("Warning"); w != "" {
		se.Message = w
	} else {
		se.Message = http.StatusText(resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra >= 0 {
		se.RetryAfter = time.Duration(ra) * time.Second
	}
	return nil, se
}
