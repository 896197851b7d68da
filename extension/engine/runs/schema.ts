// The JSON schema of an analysis run record (protocol/analysis.ts AnalysisRun), checked whenever a record is read
// back: records are files a user can edit, copy between machines, or find half-written after a crash.
import Ajv from 'ajv';
import type { AnalysisRun } from '../../protocol/analysis';

export const RUN_SCHEMA_ID = 'quantlens.analysis/1';

const nullableNumber = { type: ['number', 'null'] };
const stringList = { type: 'array', items: { type: 'string' } };
const nonNegativeInteger = { type: 'integer', minimum: 0 };

const metrics = {
  type: 'object',
  required: ['mse', 'sqnrDb', 'cosine'],
  properties: { mse: nullableNumber, sqnrDb: nullableNumber, cosine: nullableNumber },
};

const quantSetting = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'string', minLength: 1 },
    weight: {
      type: 'object',
      required: ['bits', 'granularity'],
      properties: {
        bits: { type: 'integer', minimum: 2, maximum: 16 },
        granularity: {
          type: 'object',
          required: ['kind'],
          properties: { kind: { enum: ['channel', 'group'] }, size: { type: 'integer', minimum: 1 } },
        },
        symmetric: { type: 'boolean' },
      },
    },
    activation: {
      type: 'object',
      required: ['bits', 'mode', 'symmetric'],
      properties: {
        bits: { type: 'integer', minimum: 2, maximum: 16 },
        mode: { enum: ['static-minmax', 'static-percentile', 'dynamic-token'] },
        symmetric: { type: 'boolean' },
        percentile: { type: 'number' },
      },
    },
  },
};

const settings = {
  type: 'object',
  required: ['model', 'settings', 'unit', 'groups', 'exclude', 'calibration', 'extraActivationTensors', 'executionProvider'],
  properties: {
    model: { type: 'string' },
    settings: { type: 'array', minItems: 1, items: quantSetting },
    unit: { enum: ['layer', 'group'] },
    groups: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'patterns'],
        properties: { name: { type: 'string' }, patterns: stringList, metricTensor: { type: 'string' } },
      },
    },
    exclude: stringList,
    calibration: {
      type: 'object',
      required: ['samples', 'batch', 'seed', 'dims'],
      properties: {
        source: { type: 'string' },
        samples: { type: 'integer', minimum: 1 },
        batch: { type: 'integer', minimum: 1 },
        seed: { type: 'integer' },
        dims: { type: 'object', additionalProperties: { type: 'integer', minimum: 1 } },
      },
    },
    timestep: {
      type: 'object',
      required: ['input', 'values'],
      properties: { input: { type: 'string' }, values: { type: 'array', minItems: 1, items: { type: 'number' } } },
    },
    extraActivationTensors: stringList,
    executionProvider: { enum: ['cpu', 'cuda'] },
  },
};

const timestep = { type: ['number', 'null'] };

const runSchema = {
  type: 'object',
  required: ['schema', 'id', 'createdAt', 'status', 'settings', 'environment', 'model', 'plan', 'referenceForwardMs', 'rows', 'ranges'],
  properties: {
    schema: { const: RUN_SCHEMA_ID },
    id: { type: 'string', minLength: 1 },
    createdAt: { type: 'string' },
    status: { enum: ['running', 'complete', 'cancelled', 'failed'] },
    message: { type: 'string' },
    settings,
    environment: {
      type: 'object',
      required: ['quantlens', 'onnxruntime', 'node', 'platform', 'cpu', 'executionProvider'],
      properties: Object.fromEntries(['quantlens', 'onnxruntime', 'node', 'platform', 'cpu', 'executionProvider'].map((k) => [k, { type: 'string' }])),
    },
    model: {
      type: 'object',
      required: ['fileName', 'bytes', 'layerCount'],
      properties: { fileName: { type: 'string' }, bytes: nonNegativeInteger, layerCount: nonNegativeInteger },
    },
    plan: {
      type: 'object',
      required: ['units', 'settings', 'timesteps', 'total'],
      properties: {
        units: stringList,
        settings: stringList,
        timesteps: { type: 'array', items: timestep },
        total: nonNegativeInteger,
        shard: {
          type: 'object',
          required: ['index', 'count'],
          properties: { index: nonNegativeInteger, count: { type: 'integer', minimum: 1 } },
        },
      },
    },
    referenceForwardMs: { type: 'number', minimum: 0 },
    timing: {
      type: 'object',
      required: ['setupMs', 'setupRuns', 'sweepMs', 'sweepRuns'],
      properties: { setupMs: { type: 'number' }, setupRuns: nonNegativeInteger, sweepMs: { type: 'number' }, sweepRuns: nonNegativeInteger },
    },
    warnings: stringList,
    rows: {
      type: 'array',
      items: {
        type: 'object',
        required: ['unit', 'setting', 'timestep', 'metrics', 'primary'],
        properties: {
          unit: { type: 'string' },
          setting: { type: 'string' },
          timestep,
          metrics: { type: 'object', additionalProperties: metrics },
          primary: metrics,
        },
      },
    },
    ranges: {
      type: 'array',
      items: {
        type: 'object',
        required: ['layer', 'timestep', 'min', 'max'],
        properties: { layer: { type: 'string' }, timestep, min: nullableNumber, max: nullableNumber },
      },
    },
  },
};

let compiled: ReturnType<typeof compile> | undefined;

function compile() {
  return new Ajv({ allErrors: false, strict: true, allowUnionTypes: true }).compile<AnalysisRun>(runSchema);
}

/** undefined when `value` is a valid run record, else what is wrong with it (the first problem found). */
export function runSchemaProblem(value: unknown): string | undefined {
  compiled ??= compile();
  if (compiled(value)) return undefined;
  const error = compiled.errors?.[0];
  if (!error) return 'invalid record';
  const where = error.instancePath ? `at ${error.instancePath}` : 'at the top level';
  const allowed = error.keyword === 'enum' ? ` (${(error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')})` : '';
  return `${where}: ${error.message ?? 'invalid'}${allowed}`;
}
