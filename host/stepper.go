package host

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/tetratelabs/wazero/api"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Stepper is one plugin instance kept for many calls of the step export.
// Step calls no host function and keeps nothing between calls (the whole
// state is the checkpoint it is given), so one instance can step any run;
// reusing it saves an instantiation and the Go runtime's _initialize per
// step. It is not safe for concurrent use.
type Stepper struct {
	r       *Runtime
	mod     api.Module
	k       *kernel
	stderr  *bytes.Buffer
	release func() // the Runtime's use count (acquire)
}

// NewStepper instantiates the plugin once for many Step calls (the
// Monitor's pool keeps a few).
func (r *Runtime) NewStepper(ctx context.Context) (*Stepper, error) {
	return r.newRunStepper(ctx, nil)
}

// newRunStepper is a Stepper with the clocks of the run cs (nil: the
// system's). A run on the system clocks takes the instance kept from load
// if it is still there.
func (r *Runtime) newRunStepper(ctx context.Context, cs *callState) (*Stepper, error) {
	rt, compiled, release, err := r.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if cs != nil && cs.virtual == nil {
		if mod := r.takeSpare(); mod != nil {
			r.mu.Lock()
			stderr := r.spareStderr
			r.mu.Unlock()
			return &Stepper{r: r, mod: mod, k: newKernel(64 << 20), stderr: stderr, release: release}, nil
		}
	}
	stderr := new(bytes.Buffer)
	mod, err := rt.InstantiateModule(ctx, compiled, moduleConfig(cs, stderr))
	if err != nil {
		release()
		return nil, r.trapError("instantiating the plugin", err, stderr)
	}
	return &Stepper{r: r, mod: mod, k: newKernel(64 << 20), stderr: stderr, release: release}, nil
}

// Step calls the step export once. After an error the instance may be
// broken (a trap leaves it in an unknown state): the caller closes it.
func (s *Stepper) Step(ctx context.Context, in abi.StepInput) (abi.StepOutput, error) {
	input, err := json.Marshal(in)
	if err != nil {
		return abi.StepOutput{}, err
	}
	s.k.reset(input)
	out, err := s.r.invoke(context.WithValue(ctx, kernelKey{}, s.k), s.mod, s.k, abi.ExportStep, s.stderr)
	if err != nil {
		return abi.StepOutput{}, err
	}
	var so abi.StepOutput
	if err := json.Unmarshal(out, &so); err != nil {
		return abi.StepOutput{}, &abi.Error{Code: abi.CodeInternal, Message: "plugin output is not a StepOutput: " + err.Error()}
	}
	return so, nil
}

// Close releases the instance.
func (s *Stepper) Close(ctx context.Context) {
	s.mod.Close(ctx)
	s.release()
}
