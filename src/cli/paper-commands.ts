/**
 * The commands for the paper's other parts (issue 8): `musc tokens`, `musc rscin`, `musc ablate`.
 */
import type { Command } from 'commander';

export function addPaperCommands(_program: Command): void {}
