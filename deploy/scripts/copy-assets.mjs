// Copies non-TypeScript files the compiled code loads at run time (the .proto API, the burst
// node's cloud-init template) into dist/.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/shared/proto', { recursive: true });
cpSync('shared/proto', 'dist/shared/proto', { recursive: true });
mkdirSync('dist/deploy/cloud-init', { recursive: true });
cpSync('deploy/cloud-init', 'dist/deploy/cloud-init', { recursive: true });
