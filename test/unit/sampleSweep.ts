// Analysis settings for a sweep of the DiT sample as the tests run it: layer units, no groups, exclusions or extra
// tensors, one synthetic sample (seed 0), on the CPU. Each test passes only what differs.
import * as path from 'path';
import type { AnalysisSettings, QuantSetting } from '../../extension/protocol/analysis';

export const SAMPLE = path.resolve(__dirname, '..', '..', '..', 'resources', 'sample', 'dit-sample.onnx');

export function sampleSweep(settings: QuantSetting[], overrides: Partial<AnalysisSettings> = {}): AnalysisSettings {
  return {
    model: SAMPLE,
    settings,
    unit: 'layer',
    groups: [],
    exclude: [],
    calibration: { samples: 1, batch: 1, seed: 0, dims: {} },
    extraActivationTensors: [],
    executionProvider: 'cpu',
    ...overrides,
  };
}
