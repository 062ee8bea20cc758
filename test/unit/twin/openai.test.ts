import { describe, expect, it } from 'vitest';
import {
  type ApiError,
  completionBody,
  type ParsedRequest,
  parseRequest,
  streamChunk,
  usageChunk,
} from '../../../src/twin/openai.ts';
import { countTokens, promptIdentity, withLength } from '../../../src/twin/tokenizer.ts';

const limits = { contextLength: 4096, defaultMaxTokens: 64, blockSize: 16 };

function ok(r: ParsedRequest | ApiError): ParsedRequest {
  if ('status' in r) throw new Error(`unexpected error: ${r.message}`);
  return r;
}
function err(r: ParsedRequest | ApiError): ApiError {
  if (!('status' in r)) throw new Error('expected an error');
  return r;
}

describe('tokenizer', () => {
  it('counts about one token per 4 characters of prose and is deterministic', () => {
    const text =
      'The quick brown fox jumps over the lazy dog, and then it runs into the forest where nobody can find it.';
    const n = countTokens(text);
    expect(n).toBeGreaterThan(text.length / 6);
    expect(n).toBeLessThan(text.length / 2.5);
    expect(countTokens(text)).toBe(n);
    expect(countTokens('')).toBe(0);
    expect(countTokens('a,b')).toBe(3);
    expect(countTokens('abcdefghi')).toBe(3);
  });

  it('gives equal leading block ids exactly as far as the prompts agree', () => {
    const shared = 'system: you are a helpful assistant. '.repeat(20);
    const a = promptIdentity(`${shared} question one about apples`, 16);
    const b = promptIdentity(`${shared} question two about pears and more`, 16);
    const common = Math.floor(countTokens(shared) / 16);
    expect(common).toBeGreaterThan(3);
    expect(a.blockIds.slice(0, common)).toEqual(b.blockIds.slice(0, common));
    expect(a.blockIds[common]).not.toBe(b.blockIds[common]);
    expect(a.blockIds.length).toBe(Math.ceil(a.tokens / 16));
    for (const id of a.blockIds) expect(Number.isSafeInteger(id) && id >= 0).toBe(true);
  });

  it('stops tokenizing at the limit', () => {
    expect(promptIdentity('word '.repeat(100_000), 16, 100).tokens).toBe(100);
  });

  it('extends a prompt to a hinted length with ids that depend on the text', () => {
    const p = promptIdentity('hello there', 16);
    const long = withLength(p, 1000, 16);
    expect(long.tokens).toBe(1000);
    expect(long.blockIds.length).toBe(63);
    expect(withLength(promptIdentity('hello there', 16), 1000, 16)).toEqual(long);
    expect(withLength(promptIdentity('hello here', 16), 1000, 16).blockIds[5]).not.toBe(long.blockIds[5]);
    expect(withLength(p, 1, 16)).toEqual({ tokens: 1, blockIds: [p.blockIds[0]] });
  });
});

describe('OpenAI request parsing', () => {
  it('parses a chat request with its token budget and streaming options', () => {
    const r = ok(
      parseRequest(
        'chat_completions',
        {
          model: 'm',
          messages: [
            { role: 'system', content: 'be brief' },
            { role: 'user', content: [{ type: 'text', text: 'hi' }] },
          ],
          max_completion_tokens: 20,
          stream: true,
          stream_options: { include_usage: true },
          temperature: 0.7,
        },
        limits,
      ),
    );
    expect(r).toMatchObject({
      endpoint: 'chat_completions',
      stream: true,
      includeUsage: true,
      maxTokens: 20,
    });
    expect(r.prompt.tokens).toBeGreaterThan(5);
  });

  it('uses prompt_tokens as the prompt length and the default output budget', () => {
    const r = ok(parseRequest('completions', { model: 'm', prompt: 'x', prompt_tokens: 3000 }, limits));
    expect(r.prompt.tokens).toBe(3000);
    expect(r.maxTokens).toBe(64);
    const ids = ok(
      parseRequest('completions', { model: 'm', prompt: [1, 2, 3, 4, 5], max_tokens: 1 }, limits),
    );
    expect(ids.prompt.tokens).toBe(5);
  });

  it('refuses what does not fit or is malformed, naming the field', () => {
    expect(err(parseRequest('chat_completions', { model: 'm', messages: [] }, limits))).toMatchObject({
      status: 400,
      param: 'messages',
    });
    expect(err(parseRequest('chat_completions', [], limits)).status).toBe(400);
    expect(err(parseRequest('completions', { model: 'm', prompt: 'x', max_tokens: 0 }, limits)).param).toBe(
      'max_tokens',
    );
    expect(
      err(parseRequest('completions', { model: 'm', prompt: 'x', max_tokens: 1e12 }, limits)).param,
    ).toBe('max_tokens');
    expect(
      err(parseRequest('completions', { model: 'm', prompt: 'x', max_tokens: 4096 }, limits)).message,
    ).toMatch(/exceed the model's context length 4096/);
    expect(err(parseRequest('completions', { model: 'm', prompt: 'a '.repeat(10_000) }, limits)).param).toBe(
      'prompt',
    );
    expect(
      err(parseRequest('completions', { model: 'm', prompt: 'x', prompt_tokens: 5000 }, limits)).param,
    ).toBe('prompt_tokens');
    expect(err(parseRequest('completions', { model: 'm', prompt: 'x', n: 2 }, limits)).param).toBe('n');
    expect(err(parseRequest('completions', { model: 'm', prompt: ['a', 'b'] }, limits)).status).toBe(400);
    expect(
      err(parseRequest('completions', { model: 'm', prompt: 'x', max_tokens: 'many' }, limits)).param,
    ).toBe('max_tokens');
    expect(
      err(
        parseRequest(
          'chat_completions',
          { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] },
          limits,
        ),
      ).status,
    ).toBe(501);
  });
});

describe('OpenAI response bodies', () => {
  const usage = { promptTokens: 10, completionTokens: 3, cachedTokens: 4 };
  it('builds chat and text completions with usage', () => {
    const chat = JSON.parse(
      completionBody('chat_completions', 'chatcmpl-1', 'm', 1, 'a b c', 'length', usage),
    );
    expect(chat).toMatchObject({
      object: 'chat.completion',
      choices: [{ message: { role: 'assistant', content: 'a b c' }, finish_reason: 'length' }],
      usage: {
        prompt_tokens: 10,
        completion_tokens: 3,
        total_tokens: 13,
        prompt_tokens_details: { cached_tokens: 4 },
      },
    });
    const text = JSON.parse(completionBody('completions', 'cmpl-1', 'm', 1, 'x', 'length', usage));
    expect(text).toMatchObject({ object: 'text_completion', choices: [{ text: 'x' }] });
  });

  it('builds server-sent events', () => {
    const c = streamChunk('chat_completions', 'id', 'm', 1, { role: 'assistant', text: '' }, null);
    expect(c.startsWith('data: ') && c.endsWith('\n\n')).toBe(true);
    expect(JSON.parse(c.slice(6))).toMatchObject({
      object: 'chat.completion.chunk',
      choices: [{ delta: { role: 'assistant', content: '' }, finish_reason: null }],
    });
    expect(JSON.parse(usageChunk('completions', 'id', 'm', 1, usage).slice(6))).toMatchObject({
      choices: [],
      usage: { total_tokens: 13 },
    });
  });
});
