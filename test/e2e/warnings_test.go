package e2e

import "context"

// requestWarnings hands each API response's Warning headers to the collector the request's
// context carries (see withWarnings), so concurrent requests keep their warnings apart.
type requestWarnings struct{}

type warningsKey struct{}

func (requestWarnings) HandleWarningHeaderWithContext(ctx context.Context, _ int, _ string, text string) {
	if w, ok := ctx.Value(warningsKey{}).(*[]string); ok {
		*w = append(*w, text)
	}
}

// withWarnings returns a context whose requests append their warnings to *into.
func withWarnings(ctx context.Context, into *[]string) context.Context {
	return context.WithValue(ctx, warningsKey{}, into)
}
