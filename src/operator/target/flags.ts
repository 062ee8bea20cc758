/**
 * Command-line flags in a container's args, read and set where they are (tokens or whole shell strings).
 * Dynamo's components, vLLM and SGLang parse their flags with argparse, where a flag given twice takes its
 * last value (also across spellings of one option, and from the command into the args): reads and writes
 * both go to the last occurrence, so what servetune reads back is what the process runs.
 */

/** Value of `--flag V` or `--flag=V` (any of the given spellings), at its last occurrence; else undefined. */
export function flagValue(tokens: string[], ...names: string[]): string | undefined {
  for (let i = tokens.length - 1; i >= 0; i--) {
    for (const n of names) {
      if (tokens[i] === n && i + 1 < tokens.length) return tokens[i + 1];
      if (tokens[i].startsWith(`${n}=`)) return tokens[i].slice(n.length + 1);
    }
  }
  return undefined;
}

/**
 * Sets `--flag value` in an argument list that may hold separate tokens or whole shell strings: the last
 * occurrence (of any of the spellings, `--f v` or `--f=v`) is rewritten in place, keeping every other
 * character; a missing flag is appended (to the last string when the list is one shell string).
 */
export function setFlag(args: string[], names: string[], value: string): string[] {
  const out = [...args];
  for (let i = out.length - 1; i >= 0; i--) {
    // Inside a shell string: "... --flag 4 ..." or "--flag=4", its last occurrence.
    if (out[i].includes(' ')) {
      let last: { start: number; length: number } | undefined;
      for (const n of names) {
        const re = new RegExp(`(^|\\s)${n.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')}(=|\\s+)(\\S+)`, 'g');
        for (const m of out[i].matchAll(re)) {
          const start = m.index + m[1].length + n.length + m[2].length;
          if (!last || start > last.start) last = { start, length: m[3].length };
        }
      }
      if (last) {
        out[i] = out[i].slice(0, last.start) + value + out[i].slice(last.start + last.length);
        return out;
      }
      continue;
    }
    for (const n of names) {
      if (out[i] === n && i + 1 < out.length) {
        out[i + 1] = value;
        return out;
      }
      if (out[i].startsWith(`${n}=`)) {
        out[i] = `${n}=${value}`;
        return out;
      }
    }
  }
  if (out.length === 1 && out[0].includes(' ')) out[0] = `${out[0]} ${names[0]} ${value}`;
  else out.push(names[0], value);
  return out;
}
