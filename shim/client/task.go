package client

import (
	"context"
	"errors"
	"fmt"

	shimapi "berth.dev/berth/api/shim/v1"
	shimbundle "berth.dev/berth/shim/bundle"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// call maps a shim's answer to errdefs classes; a closed connection (the
// shim died or closed it) is ErrUnavailable.
func call[T any](c *Client, v T, err error) (T, error) {
	if err == nil {
		return v, nil
	}
	if errors.Is(err, ttrpc.ErrClosed) {
		return v, fmt.Errorf("shim of %s (pid %d): %w: %w", c.bundle, c.pid, err, errdefs.ErrUnavailable)
	}
	return v, shimbundle.FromWire(err)
}

func (c *Client) Create(ctx context.Context, r *shimapi.CreateRequest) (*shimapi.CreateResponse, error) {
	v, err := c.task.Create(ctx, r)
	return call(c, v, err)
}

func (c *Client) Start(ctx context.Context, r *shimapi.StartRequest) (*shimapi.StartResponse, error) {
	v, err := c.task.Start(ctx, r)
	return call(c, v, err)
}

func (c *Client) State(ctx context.Context, r *shimapi.StateRequest) (*shimapi.StateResponse, error) {
	v, err := c.task.State(ctx, r)
	return call(c, v, err)
}

func (c *Client) Kill(ctx context.Context, r *shimapi.KillRequest) (*emptypb.Empty, error) {
	v, err := c.task.Kill(ctx, r)
	return call(c, v, err)
}

func (c *Client) Wait(ctx context.Context, r *shimapi.WaitRequest) (*shimapi.WaitResponse, error) {
	v, err := c.task.Wait(ctx, r)
	return call(c, v, err)
}

func (c *Client) Pause(ctx context.Context, r *shimapi.PauseRequest) (*emptypb.Empty, error) {
	v, err := c.task.Pause(ctx, r)
	return call(c, v, err)
}

func (c *Client) Resume(ctx context.Context, r *shimapi.ResumeRequest) (*emptypb.Empty, error) {
	v, err := c.task.Resume(ctx, r)
	return call(c, v, err)
}

func (c *Client) Exec(ctx context.Context, r *shimapi.ExecRequest) (*emptypb.Empty, error) {
	v, err := c.task.Exec(ctx, r)
	return call(c, v, err)
}

func (c *Client) Delete(ctx context.Context, r *shimapi.DeleteRequest) (*shimapi.DeleteResponse, error) {
	v, err := c.task.Delete(ctx, r)
	return call(c, v, err)
}

func (c *Client) Pids(ctx context.Context, r *shimapi.PidsRequest) (*shimapi.PidsResponse, error) {
	v, err := c.task.Pids(ctx, r)
	return call(c, v, err)
}

func (c *Client) Stats(ctx context.Context, r *shimapi.StatsRequest) (*shimapi.StatsResponse, error) {
	v, err := c.task.Stats(ctx, r)
	return call(c, v, err)
}

func (c *Client) CloseIO(ctx context.Context, r *shimapi.CloseIORequest) (*emptypb.Empty, error) {
	v, err := c.task.CloseIO(ctx, r)
	return call(c, v, err)
}

func (c *Client) ResizePty(ctx context.Context, r *shimapi.ResizePtyRequest) (*emptypb.Empty, error) {
	v, err := c.task.ResizePty(ctx, r)
	return call(c, v, err)
}

func (c *Client) Connect(ctx context.Context, r *shimapi.ConnectRequest) (*shimapi.ConnectResponse, error) {
	v, err := c.task.Connect(ctx, r)
	return call(c, v, err)
}

// Shutdown asks the shim to exit: at once with Now, else once its task is
// deleted. A shim that exits answers first, then closes the connection;
// ttrpc's client may still report the call closed when the answer and the
// end of the connection arrive together (it picks either at random). The
// shim closing the connection is the exit asked for, so that is no error;
// on a connection this client closed it still is.
func (c *Client) Shutdown(ctx context.Context, r *shimapi.ShutdownRequest) (*emptypb.Empty, error) {
	v, err := c.task.Shutdown(ctx, r)
	if errors.Is(err, ttrpc.ErrClosed) && !c.closed.Load() {
		return &emptypb.Empty{}, nil
	}
	return call(c, v, err)
}
