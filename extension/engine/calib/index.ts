// Calibration inputs for the sensitivity runner. `toOrtFeeds` lives in ./ortFeeds (it loads onnxruntime).
export { graphIntRanges } from './graphIntRanges';
export { loadCalibration } from './load';
export { detectTimestepInput, evenlySpacedTimesteps, withTimestep } from './timestep';
export * from './types';
