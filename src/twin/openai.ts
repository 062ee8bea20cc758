import { z } from 'zod';
import { identityOfTokenIds, type PromptIdentity, promptIdentity, withLength } from './tokenizer.ts';

/**
 * The OpenAI-compatible request and response shapes the twin serves (`/v1/chat/completions`,
 * `/v1/completions`, `/v1/models`), validated with bounds so that a hostile body costs little: the body size
 * is capped before parsing (by the server), the prompt is tokenized no further than the model's context, and
 * every number is range-checked. Sampling parameters are accepted and ignored (the twin models time, not
 * text); a simulated request generates exactly its token budget, as Dynamo's mocker does.
 */

export interface ApiLimits {
  /** Context length of the served model: prompt + output tokens must fit. */
  contextLength: number;
  /** Output tokens when the request gives no max_tokens. */
  defaultMaxTokens: number;
  /** Tokens per content id of the prompt identity (the simulated prefix-cache granularity). */
  blockSize: number;
}

/** An OpenAI-style error: HTTP status plus the `error` object of the body. */
export interface ApiError {
  status: number;
  type: 'invalid_request_error' | 'not_found_error' | 'server_error' | 'service_unavailable';
  message: string;
  param?: string;
  code?: string;
  /** Dynamo's `error_type` label for requests_total. */
  errorType: 'validation' | 'not_found' | 'overload' | 'internal' | 'not_implemented';
}

export function errorBody(e: ApiError): string {
  return JSON.stringify({
    error: { message: e.message, type: e.type, param: e.param ?? null, code: e.code ?? null },
  });
}

export function invalid(message: string, param?: string): ApiError {
  return { status: 400, type: 'invalid_request_error', message, param, errorType: 'validation' };
}

const MAX_MESSAGES = 10_000;
const MAX_ID = 256;
const TokenCount = z.number().int().min(1).max(10_000_000);

const TextPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const ContentPart = z.looseObject({ type: z.string().max(64) });
const Message = z.looseObject({
  role: z.string().min(1).max(64),
  content: z.union([z.string(), z.array(ContentPart).max(MAX_MESSAGES), z.null()]).optional(),
  name: z.string().max(MAX_ID).optional(),
});

const Common = {
  model: z.string().min(1).max(MAX_ID),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: TokenCount.nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  /** Twin extension: the prompt's length in tokens, overriding the tokenizer's count. */
  prompt_tokens: TokenCount.optional(),
  user: z.string().max(MAX_ID).optional(),
};

const ChatRequest = z.looseObject({
  ...Common,
  messages: z.array(Message).min(1).max(MAX_MESSAGES),
  max_completion_tokens: TokenCount.nullable().optional(),
});

const CompletionRequest = z.looseObject({
  ...Common,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1).max(1),
    z
      .array(
        z
          .number()
          .int()
          .min(0)
          .max(2 ** 32 - 1),
      )
      .min(1),
  ]),
});

export type Endpoint = 'chat_completions' | 'completions';

/** A validated request, reduced to what the simulation and the response need. */
export interface ParsedRequest {
  endpoint: Endpoint;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  prompt: PromptIdentity;
  maxTokens: number;
}

function firstIssue(e: z.ZodError): ApiError {
  const i = e.issues[0];
  const path = i.path.join('.');
  return invalid(`${path ? `${path}: ` : ''}${i.message}`, path || undefined);
}

/** The prompt text of a chat request under a simple role template (so shared conversation prefixes match). */
function chatText(messages: z.infer<typeof Message>[]): string | ApiError {
  let text = '';
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    let content = '';
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      for (const part of m.content) {
        const t = TextPart.safeParse(part);
        if (!t.success)
          return {
            status: 501,
            type: 'invalid_request_error',
            message: `messages.${i}.content: only text parts are simulated (got '${part.type}')`,
            param: `messages.${i}.content`,
            errorType: 'not_implemented',
          };
        content += t.data.text;
      }
    }
    text += `<|${m.role}|>\n${content}\n`;
  }
  return `${text}<|assistant|>\n`;
}

/** Parses and bounds a request body (already JSON-decoded). */
export function parseRequest(endpoint: Endpoint, body: unknown, limits: ApiLimits): ParsedRequest | ApiError {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return invalid('the request body must be a JSON object');
  const parsed = (endpoint === 'chat_completions' ? ChatRequest : CompletionRequest).safeParse(body);
  if (!parsed.success) return firstIssue(parsed.error);
  const r = parsed.data;
  if ((r.n ?? 1) !== 1) return invalid('only n=1 is simulated', 'n');
  const maxTokensField =
    endpoint === 'chat_completions'
      ? ((r as z.infer<typeof ChatRequest>).max_completion_tokens ?? r.max_tokens)
      : r.max_tokens;
  const ctx = limits.contextLength;
  // Tokenize no further than the context allows: one token more proves the prompt too long.
  let prompt: PromptIdentity;
  if (endpoint === 'chat_completions') {
    const text = chatText((r as z.infer<typeof ChatRequest>).messages);
    if (typeof text !== 'string') return text;
    prompt = promptIdentity(text, limits.blockSize, ctx + 1);
  } else {
    const p = (r as z.infer<typeof CompletionRequest>).prompt;
    if (typeof p === 'string' || typeof p[0] === 'string') {
      prompt = promptIdentity(typeof p === 'string' ? p : (p[0] as string), limits.blockSize, ctx + 1);
    } else {
      const ids = p as number[];
      if (ids.length > ctx)
        return invalid(`prompt has ${ids.length} tokens; the model's context is ${ctx}`, 'prompt');
      prompt = identityOfTokenIds(ids, limits.blockSize);
    }
  }
  if (r.prompt_tokens !== undefined) prompt = withLength(prompt, r.prompt_tokens, limits.blockSize);
  if (prompt.tokens < 1) prompt = withLength(prompt, 1, limits.blockSize);
  if (prompt.tokens > ctx)
    return invalid(
      `the prompt has more than ${ctx} tokens, the model's context length`,
      r.prompt_tokens !== undefined
        ? 'prompt_tokens'
        : endpoint === 'chat_completions'
          ? 'messages'
          : 'prompt',
    );
  const room = ctx - prompt.tokens;
  const maxTokens = maxTokensField ?? Math.min(limits.defaultMaxTokens, room);
  if (maxTokens < 1) return invalid(`the prompt fills the model's context (${ctx} tokens)`, 'messages');
  if (maxTokens > room)
    return invalid(
      `max_tokens ${maxTokens} plus the prompt's ${prompt.tokens} tokens exceed the model's context length ${ctx}`,
      endpoint === 'chat_completions' && (r as z.infer<typeof ChatRequest>).max_completion_tokens != null
        ? 'max_completion_tokens'
        : 'max_tokens',
    );
  return {
    endpoint,
    model: r.model,
    stream: r.stream === true,
    includeUsage: r.stream_options?.include_usage === true,
    prompt,
    maxTokens,
  };
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

function usageJson(u: Usage) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

export type FinishReason = 'length' | 'stop';

/** The body of a non-streaming response. */
export function completionBody(
  endpoint: Endpoint,
  id: string,
  model: string,
  created: number,
  text: string,
  finish: FinishReason,
  usage: Usage,
): string {
  if (endpoint === 'chat_completions') {
    return JSON.stringify({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish },
      ],
      usage: usageJson(usage),
    });
  }
  return JSON.stringify({
    id,
    object: 'text_completion',
    created,
    model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    usage: usageJson(usage),
  });
}

/** One server-sent event of a streaming response (`data: {...}\n\n`). */
export function streamChunk(
  endpoint: Endpoint,
  id: string,
  model: string,
  created: number,
  delta: { role?: 'assistant'; text?: string },
  finish: FinishReason | null,
): string {
  const choice =
    endpoint === 'chat_completions'
      ? {
          index: 0,
          delta: {
            ...(delta.role && { role: delta.role }),
            ...(delta.text !== undefined && { content: delta.text }),
          },
          logprobs: null,
          finish_reason: finish,
        }
      : { index: 0, text: delta.text ?? '', logprobs: null, finish_reason: finish };
  const object = endpoint === 'chat_completions' ? 'chat.completion.chunk' : 'text_completion';
  return `data: ${JSON.stringify({ id, object, created, model, choices: [choice] })}\n\n`;
}

/** The usage chunk sent before `[DONE]` when `stream_options.include_usage` is set. */
export function usageChunk(
  endpoint: Endpoint,
  id: string,
  model: string,
  created: number,
  usage: Usage,
): string {
  const object = endpoint === 'chat_completions' ? 'chat.completion.chunk' : 'text_completion';
  return `data: ${JSON.stringify({ id, object, created, model, choices: [], usage: usageJson(usage) })}\n\n`;
}

export const STREAM_DONE = 'data: [DONE]\n\n';

export function modelsBody(model: string, created: number): string {
  return JSON.stringify({
    object: 'list',
    data: [{ id: model, object: 'model', created, owned_by: 'nvidia' }],
  });
}
