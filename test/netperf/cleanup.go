package main

import (
	"context"
	"errors"
	"fmt"
)

// cleanupStack runs undo steps in reverse order of registration.
type cleanupStack struct {
	steps []cleanupStep
}

type cleanupStep struct {
	name string
	fn   func(context.Context) error
}

func (s *cleanupStack) push(name string, fn func(context.Context) error) {
	s.steps = append(s.steps, cleanupStep{name, fn})
}

// run executes every step (last first), even when some fail, and empties the stack.
func (s *cleanupStack) run(ctx context.Context) error {
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", s.steps[i].name, err))
		}
	}
	s.steps = nil
	return errors.Join(errs...)
}

// names lists the pending steps, last first, for --keep.
func (s *cleanupStack) names() []string {
	var out []string
	for i := len(s.steps) - 1; i >= 0; i-- {
		out = append(out, s.steps[i].name)
	}
	return out
}
