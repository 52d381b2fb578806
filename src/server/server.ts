/**
 * `laborspace serve`: the space over HTTP (Fastify). Every body and query is checked against a JSON
 * schema (a 400 says which field is wrong), bodies are limited in size, requests in time, and no
 * error leaks a stack: the space's own errors become 4xx answers with their message, anything else
 * a 500 that only says "internal error" (the detail goes to the server's log). Free text is
 * encoded by onnxruntime on its own threads, off the event loop. The explorer (a static page built
 * from src/server/explorer) is served at /.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';

import { NAMED_AXES } from '../analysis/analyses.js';
import { ExprError } from '../analysis/expr.js';
import { spaceMap, type SpaceMap } from '../analysis/map.js';
import { scoreTexts } from '../analysis/score.js';
import { nativeInfo } from '../native.js';
import { type LaborSpace, SpaceError } from '../space.js';
import { showEntity } from '../store/entity-view.js';
import { ENTITY_TYPES, type EntityType, StoreError } from '../store/index.js';
import { VERSION } from '../version.js';

export interface ServerOptions {
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Longest time a request may take, in ms (default 30 s). */
  requestTimeout?: number;
  /** Log requests and errors (default: errors only). */
  logLevel?: 'error' | 'info' | 'silent';
  /** Where the built explorer is (default: dist/explorer beside the compiled server). */
  explorerDir?: string;
}

const typesSchema = { type: 'array', items: { enum: [...ENTITY_TYPES] }, minItems: 1, uniqueItems: true } as const;
const polesSchema = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 2000 }, minItems: 1, maxItems: 50 } as const;
const axesSchema = { type: 'array', items: { enum: Object.keys(NAMED_AXES) }, uniqueItems: true } as const;

const EXPLORER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'explorer');

/** Comma-separated types of a query string, checked. */
function parseTypes(value: string | undefined): EntityType[] | undefined {
  if (value === undefined) return undefined;
  const types = value.split(',').map((t) => t.trim()).filter(Boolean);
  const bad = types.find((t) => !(ENTITY_TYPES as readonly string[]).includes(t));
  if (bad !== undefined || !types.length) throw new SpaceError('BAD_OPTION', `querystring/types must be a comma-separated list of ${ENTITY_TYPES.join(', ')}${bad ? `, got "${bad}"` : ''}`);
  return types as EntityType[];
}

export async function createServer(space: LaborSpace, options: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 1 << 20,
    requestTimeout: options.requestTimeout ?? 30_000,
    connectionTimeout: options.requestTimeout ?? 30_000,
    logger: options.logLevel === 'silent' ? false : { level: options.logLevel ?? 'error' },
    ajv: { customOptions: { removeAdditional: false, allErrors: false, coerceTypes: 'array' } },
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return reply.status(400).send({ error: 'bad_request', message: error.message });
    if (error instanceof ExprError) return reply.status(400).send({ error: 'bad_expression', message: error.message, position: error.position });
    if (error instanceof SpaceError) {
      const status = error.code === 'NOT_BUILT' ? 503 : /^no entity /.test(error.message) ? 404 : 400;
      return reply.status(status).send({ error: error.code.toLowerCase(), message: error.message });
    }
    if (error instanceof StoreError) return reply.status(error.code === 'UNKNOWN_ENTITY' ? 404 : 400).send({ error: error.code.toLowerCase(), message: error.message });
    if (error.statusCode && error.statusCode < 500) return reply.status(error.statusCode).send({ error: 'bad_request', message: error.message });
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }));

  app.get('/health', async () => ({ status: 'ok', model: space.modelId, dim: space.dim, entities: Object.fromEntries(ENTITY_TYPES.map((t) => [t, space.index.vectors(t)?.refs.length ?? 0])) }));

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
          properties: { q: { type: 'string', minLength: 1, maxLength: 5000 }, types: { type: 'string', maxLength: 100 }, k: { type: 'integer', minimum: 1, maximum: 1000, default: 10 }, exact: { type: 'boolean', default: false } },
          required: ['q'],
          additionalProperties: false,
        },
      },
    },
    async (request) => space.near(request.query.q, { types: parseTypes(request.query.types), k: request.query.k, exact: request.query.exact }),
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
    async (request) => {
      const { name, from, to, ...rest } = request.body;
      if (name && (from || to)) throw new SpaceError('BAD_OPTION', 'body must have either name or from and to, not both');
      const poles = name ? NAMED_AXES[name] : from && to ? { from, to } : undefined;
      if (!poles) throw new SpaceError('BAD_OPTION', 'body must have name, or both from and to');
      return space.axis(poles.from, poles.to, rest);
    },
  );

  app.post<{ Body: { expr: string; types?: EntityType[]; k?: number; includeOperands?: boolean } }>(
    '/v1/arith',
    {
      schema: {
        body: {
          type: 'object',
          properties: { expr: { type: 'string', minLength: 1, maxLength: 5000 }, types: typesSchema, k: { type: 'integer', minimum: 1, maximum: 1000 }, includeOperands: { type: 'boolean' } },
          required: ['expr'],
          additionalProperties: false,
        },
      },
    },
    async (request) => space.arith(request.body.expr, request.body),
  );

  app.post<{ Body: { direction: string; types?: EntityType[]; top?: number } }>(
    '/v1/shock',
    {
      schema: {
        body: {
          type: 'object',
          properties: { direction: { type: 'string', minLength: 1, maxLength: 5000 }, types: typesSchema, top: { type: 'integer', minimum: 1, maximum: 1000 } },
          required: ['direction'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { all: _all, ...result } = await space.shock(request.body.direction, request.body);
      return result;
    },
  );

  const textsSchema = (max: number) => ({ type: 'array', items: { type: 'string', minLength: 1, maxLength: 20_000 }, minItems: 1, maxItems: max }) as const;

  app.post<{ Body: { texts: string[] } }>(
    '/v1/embed',
    { schema: { body: { type: 'object', properties: { texts: textsSchema(256) }, required: ['texts'], additionalProperties: false } } },
    async (request) => {
      const vectors = await space.embed(request.body.texts);
      const dim = space.dim;
      return { model: space.modelId, dim, vectors: request.body.texts.map((_, i) => Array.from(vectors.subarray(i * dim, (i + 1) * dim))) };
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
    async (request) => {
      const names = request.body.axes ?? Object.keys(NAMED_AXES);
      const rows = await scoreTexts(space, request.body.texts, { skills: request.body.skills ?? 5, axes: Object.fromEntries(names.map((n) => [n, NAMED_AXES[n]])) });
      return { rows: rows.map(({ id: _id, ...row }, i) => ({ index: i, ...row })) };
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
