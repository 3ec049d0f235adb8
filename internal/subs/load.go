package subs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/wire"
)

// Load stores the subscriptions of a CSV file, one "id,topic" a line
// (blank lines and lines starting with # skipped), in batches, several
// in flight at once. progress, if set, is called after each batch with
// the subscriptions stored so far. A bad line stops the load with an
// error naming it; what came before it is stored (and counted).
func Load(ctx context.Context, st *Stream, r io.Reader, progress func(n int)) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var bt Batcher
	stored, inBatch := 0, 0
	store := func(batch []byte) error {
		if batch == nil {
			return nil
		}
		if _, err := st.Publish(ctx, batch); err != nil {
			return err
		}
		stored += inBatch
		inBatch = 0
		if progress != nil {
			progress(stored)
		}
		return nil
	}
	// A bad line stops the load; what came before it is stored.
	bad := func(err error) (int, error) {
		if ferr := store(bt.Flush()); ferr != nil {
			return stored, ferr
		}
		return stored, err
	}
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		comma := bytes.IndexByte(b, ',')
		if comma < 0 {
			return bad(fmt.Errorf("line %d: %q: want id,topic", line, clip(b)))
		}
		id, err := ids.Parse(string(bytes.TrimSpace(b[:comma])))
		if err != nil {
			return bad(fmt.Errorf("line %d: bad id: %w", line, err))
		}
		topic := bytes.TrimSpace(b[comma+1:])
		if !wire.ValidTopic(topic) {
			return bad(fmt.Errorf("line %d: bad topic %q: want 1 to %d of A-Z a-z 0-9 : . _ -", line, clip(topic), wire.MaxTopic))
		}
		if full := bt.Add(OpSubscribe, id, string(topic)); full != nil {
			if err := store(full); err != nil {
				return stored, err
			}
		}
		inBatch++
	}
	if err := sc.Err(); err != nil {
		return stored, err
	}
	return stored, store(bt.Flush())
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
