/**
 * Helpers for text that comes from outside: image names, descriptions and tag values (anyone who
 * may create an image writes them), AWS error codes and messages, and policy documents.
 */

/**
 * C0 controls (tab and line breaks included), DEL and C1 controls (together `\p{Cc}`), the Unicode
 * line and paragraph separators, and the bidirectional marks, embeddings, overrides and isolates.
 * A terminal acts on the controls (`ESC ] 0 ; title BEL` retitles the window, `ESC [ 2 J` clears it, a line break
 * forges a table row); the others let text read differently from the characters it holds.
 */
const CONTROL_CHARACTERS = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** What stands in for a control character: visible, and one column wide like most text. */
export const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * The text with every control, separator and bidi character replaced by U+FFFD, so it prints as
 * one line of what it says. One character for one, so widths and offsets are unchanged.
 */
export function printable(text: string): string {
  return text.replace(CONTROL_CHARACTERS, REPLACEMENT_CHARACTER);
}

/**
 * The first `max` characters and a marker with the original length, e.g.
 * `abc…[truncated, 1048576 chars]`; text within `max` is returned as it is. The marker says the
 * value was cut, so a reader never takes the head for the whole.
 */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  let head = text.slice(0, Math.max(0, max));
  const last = head.charCodeAt(head.length - 1);
  // Half a surrogate pair would print as garbage (and is not valid UTF-8 in a log line).
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${head}…[truncated, ${text.length} chars]`;
}

/** `printable` and then `truncateText`: an outside value fit for one line of a terminal. */
export function oneLine(text: string, max: number): string {
  return truncateText(printable(text), max);
}
