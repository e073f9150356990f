package export

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/radflow/radflow/internal/store"
)

// StoreMeta is what StoreSource needs from the metadata store
// (*store.SQLite implements it).
type StoreMeta interface {
	GetInstance(ctx context.Context, sopInstanceUID string) (*store.Instance, error)
	SearchInstances(ctx context.Context, q store.Query) ([]store.Instance, error)
}

// StoreSource is the Source over package store: rows from Meta, bytes
// from Blobs (decoded by any Codec). store.ErrNotFound becomes ErrNotFound.
type StoreSource struct {
	Meta  StoreMeta
	Blobs store.BlobStore
}

var _ Source = StoreSource{}

func refOf(in *store.Instance) Ref {
	return Ref{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID, StudyInstanceUID: in.StudyInstanceUID,
		TransferSyntaxUID: in.TransferSyntaxUID, Size: in.Size, Result: in.Source == store.SourceResult}
}

func notFound(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return err
}

// Instances implements Source (ordered as store.SearchInstances orders them).
func (s StoreSource) Instances(ctx context.Context, studyInstanceUID string) ([]Ref, error) {
	rows, err := s.Meta.SearchInstances(ctx, store.Query{StudyInstanceUID: []string{studyInstanceUID}})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: study %s", ErrNotFound, studyInstanceUID)
	}
	out := make([]Ref, len(rows))
	for i := range rows {
		out[i] = refOf(&rows[i])
	}
	return out, nil
}

// Instance implements Source.
func (s StoreSource) Instance(ctx context.Context, sopInstanceUID string) (Ref, error) {
	in, err := s.Meta.GetInstance(ctx, sopInstanceUID)
	if err != nil {
		return Ref{}, notFound(err, "instance "+sopInstanceUID)
	}
	return refOf(in), nil
}

// Open implements Source.
func (s StoreSource) Open(ctx context.Context, sopInstanceUID string) (io.ReadCloser, error) {
	in, err := s.Meta.GetInstance(ctx, sopInstanceUID)
	if err != nil {
		return nil, notFound(err, "instance "+sopInstanceUID)
	}
	rc, err := store.OpenInstance(ctx, s.Blobs, in) // verified against the row's digest at EOF
	if err != nil {
		return nil, notFound(err, "blob of instance "+sopInstanceUID)
	}
	return rc, nil
}
