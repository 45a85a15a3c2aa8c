package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/ue-prefect/ue-prefect/abi"
)

// stepper is one plugin instance kept for many calls of the step export.
// Step calls no host function and keeps nothing between calls (the whole
// state is the checkpoint it is given), so one instance can step any run;
// reusing it saves an instantiation and the Go runtime's _initialize per
// step. It is not safe for concurrent use.
type stepper struct {
	r      *Runtime
	mod    api.Module
	k      *kernel
	stderr *bytes.Buffer
}

func (r *Runtime) newStepper(ctx context.Context) (*stepper, error) {
	stderr := new(bytes.Buffer)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStderr(&limitedWriter{w: stderr, n: 16 << 10}).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	mod, err := r.rt.InstantiateModule(ctx, r.compiled, mc)
	if err != nil {
		return nil, r.trapError("instantiating the plugin", err, stderr)
	}
	return &stepper{r: r, mod: mod, k: newKernel(64 << 20), stderr: stderr}, nil
}

// step calls the step export once. After an error the instance may be
// broken (a trap leaves it in an unknown state): the caller closes it.
func (s *stepper) step(ctx context.Context, in abi.StepInput) (abi.StepOutput, error) {
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

func (s *stepper) close(ctx context.Context) { s.mod.Close(ctx) }
