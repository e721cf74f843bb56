//go:build switchyard_broken_inbox

package inbox

// forgetsIDs is true in a deliberately broken build (-tags switchyard_broken_inbox):
// the inbox records no event id, so a second delivery runs its handler again. It
// exists for one test — that `switchyard faults run` catches the bug, naming what
// broke — and is never built otherwise.
const forgetsIDs = true
