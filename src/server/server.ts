/**
 * `laborspace serve`: the space over HTTP (Fastify). Every body and query is checked against a JSON
 * schema (a 400 says which field is wrong), bodies are limited in size, requests in time, and no
 * error leaks a stack: the space's own errors become 4xx answers with their message, anything else
 * a 500 that only says "internal error" (the detail goes to the server's log).
 *
 * The event loop only parses, dispatches and formats: free text is encoded on the encoder's worker
 * thread, scans and projections run on the libuv pool, and the heavy routes (axis, shock, score,
 * embed) wait for one of a few slots and run on analysis threads of their own
 * (src/server/heavy-threads.ts), which like the encoder's run at a lower priority (niceness 10),
 * so reference queries keep answering in milliseconds while they run. Each request carries an
 * AbortSignal that fires when its client disconnects or its time runs out, and the work stops at
 * its next step. The explorer (a static page built from src/server/explorer) is served at /.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

import { NAMED_AXES } from '../analysis/analyses.js';
import { ExprError, MAX_QUERY_LENGTH } from '../analysis/expr.js';
import { EncoderError } from '../encoder/sentence-encoder.js';
import { spaceMap, type SpaceMap } from '../analysis/map.js';
import { nativeInfo } from '../native.js';
import { checkTypes, SpaceError } from '../errors.js';
import type { LaborSpace } from '../space.js';
import { showEntity } from '../store/entity-view.js';
import { ENTITY_TYPES, type EntityType, StoreError } from '../store/index.js';
import { VERSION } from '../version.js';
import { type HeavyRequest, HeavyThreads, isBlank } from './heavy-threads.js';

export interface ServerOptions {
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Longest time a request may take, in ms (default 30 s): then its work stops and the answer is a 503. */
  requestTimeout?: number;
  /** Heavy requests (axis, shock, score, embed) run at once; the rest wait (default: a quarter of the cores, at least 1). */
  heavySlots?: number;
  /** Log requests and errors (default: errors only). */
  logLevel?: 'error' | 'info' | 'silent';
  /** Where the built explorer is (default: dist/explorer beside the compiled server). */
  explorerDir?: string;
  /** More for /health (the processes of `serve --workers`). */
  health?: () => object;
}

const typesSchema = { type: 'array', items: { enum: [...ENTITY_TYPES] }, minItems: 1, uniqueItems: true } as const;
const polesSchema = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 2000 }, minItems: 1, maxItems: 50 } as const;
const axesSchema = { type: 'array', items: { enum: Object.keys(NAMED_AXES) }, uniqueItems: true } as const;

const EXPLORER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'explorer');

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborted when the client disconnects (the response closes unfinished) or the request's time runs out. */
    workSignal: AbortSignal;
  }
}

/** Why a request's signal fired. */
class RequestAborted extends Error {
  readonly timedOut: boolean;
  constructor(timedOut: boolean, ms: number) {
    super(timedOut ? `the request took longer than ${ms} ms and was stopped` : 'the client disconnected');
    this.name = 'RequestAborted';
    this.timedOut = timedOut;
  }
}

/** At most `slots` tasks at a time, the others waiting in order (or until their signal fires). */
function limiter(slots: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(signal: AbortSignal, task: () => Promise<T>): Promise<T> => {
    if (running >= slots) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal.removeEventListener('abort', give);
          resolve();
        };
        const give = () => {
          waiting.splice(waiting.indexOf(go), 1);
          reject(signal.reason);
        };
        waiting.push(go);
        signal.addEventListener('abort', give, { once: true });
      });
    }
    running++;
    try {
      signal.throwIfAborted();
      return await task();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** Status of each SpaceError code: a missing entity is a 404, a space not built a 503, the rest the client's fault. */
const SPACE_STATUS: Record<SpaceError['code'], number> = { UNKNOWN_ENTITY: 404, NOT_BUILT: 503, BAD_QUERY: 400, BAD_OPTION: 400 };


export async function createServer(space: LaborSpace, options: ServerOptions = {}): Promise<FastifyInstance> {
  const timeout = options.requestTimeout ?? 30_000;
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1 << 20,
    requestTimeout: timeout,
    connectionTimeout: timeout,
    logger: options.logLevel === 'silent' ? false : { level: options.logLevel ?? 'error' },
    ajv: { customOptions: { removeAdditional: false, allErrors: false, coerceTypes: 'array' } },
  });

  const slots = options.heavySlots ?? Math.max(1, Math.floor(availableParallelism() / 4));
  const heavy = limiter(slots);
  // One analysis thread per slot, opening its space now rather than on the first heavy request.
  const threads = new HeavyThreads(space, slots);
  app.addHook('onClose', () => threads.close());
  /** A heavy request in a slot, on an analysis thread; the answer it wrote is sent as it is. */
  const runHeavy = async (request: FastifyRequest, reply: FastifyReply, heavyRequest: HeavyRequest) => {
    const body = await heavy(request.workSignal, () => threads.run(heavyRequest, request.workSignal));
    return reply.type('application/json; charset=utf-8').send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  };

  app.decorateRequest('workSignal', null as unknown as AbortSignal);
  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new RequestAborted(true, timeout)), timeout);
    reply.raw.once('close', () => {
      clearTimeout(timer);
      if (!reply.raw.writableFinished) controller.abort(new RequestAborted(false, timeout));
    });
    request.workSignal = controller.signal;
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return reply.status(400).send({ error: 'bad_request', message: error.message });
    if (error instanceof RequestAborted) return reply.status(503).send({ error: error.timedOut ? 'timeout' : 'aborted', message: error.message });
    if (error instanceof ExprError) return reply.status(400).send({ error: 'bad_expression', message: error.message, position: error.position });
    if (error instanceof SpaceError) return reply.status(SPACE_STATUS[error.code]).send({ error: error.code.toLowerCase(), message: error.message });
    if (error instanceof EncoderError) return reply.status(400).send({ error: error.code.toLowerCase(), message: error.message });
    if (error instanceof StoreError) return reply.status(error.code === 'UNKNOWN_ENTITY' ? 404 : 400).send({ error: error.code.toLowerCase(), message: error.message });
    if (error.statusCode && error.statusCode < 500) return reply.status(error.statusCode).send({ error: 'bad_request', message: error.message });
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }));

  // A space changed under the server (`train` or `build` on its home) is reported, not reloaded:
  // the answers stay those of the space it opened until it is restarted.
  app.get('/health', async (_request, reply) => {
    const stale = space.staleness();
    const entities = Object.fromEntries(ENTITY_TYPES.map((t) => [t, space.index.vectors(t)?.refs.length ?? 0]));
    const status = stale ? { status: 'stale', message: `${stale}: restart the server to serve it` } : { status: 'ok' };
    return reply.status(stale ? 503 : 200).send({ ...status, model: space.modelId, dim: space.dim, entities, analysisThreads: threads.health(), ...options.health?.() });
  });

  app.get('/v1/version', async () => ({ version: VERSION, model: space.modelId, native: { isa: nativeInfo().isa, cuda: nativeInfo().cuda } }));

  app.get<{ Params: { ref: string }; Querystring: { limit?: number } }>(
    '/v1/entities/:ref',
    { schema: { params: { type: 'object', properties: { ref: { type: 'string', minLength: 3, maxLength: 300 } }, required: ['ref'] }, querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 10 } }, additionalProperties: false } } },
    async (request) => showEntity(space.store, request.params.ref, request.query.limit ?? 10),
  );

  app.get<{ Querystring: { q: string; types?: string; k?: number; exact?: boolean } }>(
    '/v1/near',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { q: { type: 'string', minLength: 1, maxLength: MAX_QUERY_LENGTH }, types: { type: 'string', maxLength: 100 }, k: { type: 'integer', minimum: 1, maximum: 1000, default: 10 }, exact: { type: 'boolean', default: false } },
          required: ['q'],
          additionalProperties: false,
        },
      },
    },
    async (request) => space.near(request.query.q, { types: checkTypes(request.query.types, 'querystring/types'), k: request.query.k, exact: request.query.exact, signal: request.workSignal }),
  );

  app.post<{ Body: { name?: string; from?: string[]; to?: string[]; types?: EntityType[]; top?: number; bootstrap?: number; positions?: string[] } }>(
    '/v1/axis',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { enum: Object.keys(NAMED_AXES) },
            from: polesSchema,
            to: polesSchema,
            types: typesSchema,
            top: { type: 'integer', minimum: 1, maximum: 1000 },
            bootstrap: { type: 'integer', minimum: 0, maximum: 1000 },
            positions: { type: 'array', items: { type: 'string', minLength: 3, maxLength: 300 }, maxItems: 100 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const { name, from, to, ...rest } = request.body;
      if (name && (from || to)) throw new SpaceError('BAD_OPTION', 'body must have either name or from and to, not both');
      const poles = name ? NAMED_AXES[name] : from && to ? { from, to } : undefined;
      if (!poles) throw new SpaceError('BAD_OPTION', 'body must have name, or both from and to');
      return runHeavy(request, reply, { route: 'axis', from: poles.from, to: poles.to, options: rest });
    },
  );

  app.post<{ Body: { expr: string; types?: EntityType[]; k?: number; includeOperands?: boolean } }>(
    '/v1/arith',
    {
      schema: {
        body: {
          type: 'object',
          properties: { expr: { type: 'string', minLength: 1, maxLength: MAX_QUERY_LENGTH }, types: typesSchema, k: { type: 'integer', minimum: 1, maximum: 1000 }, includeOperands: { type: 'boolean' } },
          required: ['expr'],
          additionalProperties: false,
        },
      },
    },
    async (request) => space.arith(request.body.expr, { ...request.body, signal: request.workSignal }),
  );

  app.post<{ Body: { direction: string; types?: EntityType[]; top?: number } }>(
    '/v1/shock',
    {
      schema: {
        body: {
          type: 'object',
          properties: { direction: { type: 'string', minLength: 1, maxLength: MAX_QUERY_LENGTH }, types: typesSchema, top: { type: 'integer', minimum: 1, maximum: 1000 } },
          required: ['direction'],
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const { direction, ...rest } = request.body;
      return runHeavy(request, reply, { route: 'shock', direction, options: rest });
    },
  );

  const textsSchema = (max: number) => ({ type: 'array', items: { type: 'string', minLength: 1, maxLength: 20_000 }, minItems: 1, maxItems: max }) as const;

  app.post<{ Body: { texts: string[] } }>(
    '/v1/embed',
    { schema: { body: { type: 'object', properties: { texts: textsSchema(256) }, required: ['texts'], additionalProperties: false } } },
    async (request, reply) => {
      const blank = request.body.texts.findIndex(isBlank);
      if (blank >= 0) throw new SpaceError('BAD_QUERY', `body/texts/${blank} is blank: there is nothing to embed`);
      return runHeavy(request, reply, { route: 'embed', texts: request.body.texts });
    },
  );

  app.post<{ Body: { texts: string[]; skills?: number; axes?: string[] } }>(
    '/v1/score',
    {
      schema: {
        body: {
          type: 'object',
          properties: { texts: textsSchema(1000), skills: { type: 'integer', minimum: 0, maximum: 100 }, axes: axesSchema },
          required: ['texts'],
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const names = request.body.axes ?? Object.keys(NAMED_AXES);
      const axes = Object.fromEntries(names.map((n) => [n, NAMED_AXES[n]]));
      return runHeavy(request, reply, { route: 'score', texts: request.body.texts, skills: request.body.skills ?? 5, axes });
    },
  );

  // The explorer's map: PCA of every entity, computed once, thinned to at most `max` points.
  let map: Promise<SpaceMap> | undefined;
  app.get<{ Querystring: { max?: number } }>(
    '/v1/map',
    { schema: { querystring: { type: 'object', properties: { max: { type: 'integer', minimum: 100, maximum: 50_000, default: 6000 } }, additionalProperties: false } } },
    async (request) => {
      map ??= spaceMap(space, { axis: NAMED_AXES['manufacturing-healthcare'] }).catch((e) => {
        map = undefined;
        throw e;
      });
      const full = await map;
      const step = Math.max(1, Math.ceil(full.points.length / (request.query.max ?? 6000)));
      return { ...full, points: full.points.filter((_, i) => i % step === 0) };
    },
  );

  const explorer = options.explorerDir ?? EXPLORER_DIR;
  if (existsSync(join(explorer, 'index.html'))) {
    await app.register(fastifyStatic, { root: explorer, prefix: '/', index: ['index.html'] });
  } else {
    app.get('/', async (_request, reply) => reply.status(503).send({ error: 'not_built', message: `the explorer is not built (${explorer}): run npm run build` }));
  }
  return app;
}
