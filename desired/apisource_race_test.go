package desired

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/spec"
)

// Applies side by side (the API serves calls concurrently) read the
// objects in force under the source's lock: run with -race.
func TestAPISource_Apply_Concurrent(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	api, err := OpenAPISource(db, NewStore())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				objs, err := spec.Parse("t.yaml", []byte(fmt.Sprintf("apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n%d}\nspec: {subnet: 10.88.%d.0/24}\n", w, i)))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := api.Apply(context.Background(), objs, ApplyOptions{Manager: "m", ApplySet: "s"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
