/**
 * Amanda's string quoting (common-src/amutil.c quote_string / unquote_string /
 * split_quoted_strings): a name is wrapped in "..." when it is empty or holds a
 * space, control or non-ASCII byte, `:`, `'`, `\` or `"`; inside, \t \n \r \f \\ \"
 * are escaped and other bytes are copied raw. The same rules apply to headers, trace
 * logs and `amadmin find` output.
 */

/** Splits a line on runs of blanks, keeping quoted strings whole and unquoting them. */
export function splitQuoted(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && (line[i] === " " || line[i] === "\t")) i++;
    if (i >= n) break;
    let tok = "";
    let inQuote = false;
    while (i < n && (inQuote || (line[i] !== " " && line[i] !== "\t"))) {
      const c = line[i]!;
      if (c === '"') {
        inQuote = !inQuote;
        i++;
      } else if (c === "\\" && inQuote && i + 1 < n) {
        const [ch, len] = unescapeAt(line, i + 1);
        tok += ch;
        i += 1 + len;
      } else {
        tok += c;
        i++;
      }
    }
    out.push(tok);
  }
  return out;
}

function unescapeAt(s: string, i: number): [string, number] {
  const c = s[i]!;
  switch (c) {
    case "n":
      return ["\n", 1];
    case "t":
      return ["\t", 1];
    case "r":
      return ["\r", 1];
    case "f":
      return ["\f", 1];
    default: {
      const m = /^[0-7]{1,3}/.exec(s.slice(i, i + 3));
      if (m) return [String.fromCharCode(parseInt(m[0], 8)), m[0].length];
      return [c, 1];
    }
  }
}

/** Removes one level of Amanda quoting from a single token ("Lab Docs $HOME" → Lab Docs $HOME). */
export function unquote(s: string): string {
  return splitQuoted(s).join(" ");
}

/** Quotes a name the way Amanda writes it in headers and logs. */
export function quote(s: string): string {
  if (s !== "" && !/[\x00-\x20\x7f-\uffff:'\\"]/.test(s)) return s;
  const esc = s.replace(/[\\"\t\n\r\f]/g, (c) => ({ "\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f" })[c]!);
  return `"${esc}"`;
}

/** Amanda's sanitise_filename(): `/`, `:` and `\` become `_` (vtape and holding file names). */
export function sanitiseFilename(s: string): string {
  return s.replace(/[/:\\]/g, "_");
}
