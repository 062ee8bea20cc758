/**
 * Options merged over defaults, where an option given as `undefined` keeps the default. A plain spread
 * (`{ ...defaults, ...opts }`) lets `{ leaseDurationMs: undefined }` erase the default, which is how flags a
 * caller did not set used to reach the leader elector as `undefined` (a Lease without a duration).
 */
export function withDefaults<D extends object, O extends object>(defaults: D, opts: O | undefined): D & O {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [k, v] of Object.entries(opts ?? {})) if (v !== undefined) out[k] = v;
  return out as D & O;
}
