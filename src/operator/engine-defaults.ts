/** Engine knobs a DGD leaves unset run at these (as the sweep's mapping assumes: vLLM's defaults). */
export const ENGINE_DEFAULTS = { backend: 'vLLM', maxNumSeqs: 256, maxNumBatchedTokens: 8192, blockSize: 64 };
