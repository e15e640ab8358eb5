// Copies non-TypeScript files the compiled code loads at run time (the .proto API) into dist/.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/shared/proto', { recursive: true });
cpSync('shared/proto', 'dist/shared/proto', { recursive: true });
