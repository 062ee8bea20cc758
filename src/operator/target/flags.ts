/** Command-line flags in a container's args, read and set where they are (tokens or whole shell strings). */

/** Value of `--flag V` or `--flag=V` (first of the given spellings), or undefined. */
export function flagValue(tokens: string[], ...names: string[]): string | undefined {
  for (let i = 0; i < tokens.length; i++) {
    for (const n of names) {
      if (tokens[i] === n && i + 1 < tokens.length) return tokens[i + 1];
      if (tokens[i].startsWith(`${n}=`)) return tokens[i].slice(n.length + 1);
    }
  }
  return undefined;
}

/**
 * Sets `--flag value` in an argument list that may hold separate tokens or whole shell strings: an existing
 * occurrence (of any of the spellings, `--f v` or `--f=v`) is rewritten in place, keeping every other
 * character; a missing flag is appended (to the last string when the list is one shell string).
 */
export function setFlag(args: string[], names: string[], value: string): string[] {
  const out = [...args];
  for (let i = 0; i < out.length; i++) {
    for (const n of names) {
      if (out[i] === n && i + 1 < out.length) {
        out[i + 1] = value;
        return out;
      }
      if (out[i].startsWith(`${n}=`) && !out[i].includes(' ')) {
        out[i] = `${n}=${value}`;
        return out;
      }
      // Inside a shell string: "... --flag 4 ..." or "--flag=4".
      const re = new RegExp(`(^|\\s)${n.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')}(=|\\s+)(\\S+)`);
      const m = re.exec(out[i]);
      if (m && out[i].includes(' ')) {
        const start = m.index + m[1].length + n.length + m[2].length;
        out[i] = out[i].slice(0, start) + value + out[i].slice(start + m[3].length);
        return out;
      }
    }
  }
  if (out.length === 1 && out[0].includes(' ')) out[0] = `${out[0]} ${names[0]} ${value}`;
  else out.push(names[0], value);
  return out;
}
