-- codeexec-lsp: run, explain and fix Python selections (Neovim 0.11+).
--
-- Found by `vim.lsp.config` on the runtimepath (this directory must be on 'runtimepath').
-- Override any field with `vim.lsp.config('codeexec', { ... })`, then
-- `vim.lsp.enable('codeexec')`.

---@type vim.lsp.Config
return {
  -- e.g. { 'python', '-m', 'codeexec_lsp' } or { '/path/to/venv/bin/codeexec-lsp' }
  cmd = { 'codeexec-lsp' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
  -- Answers the server's workspace/configuration request for section `codeexec`, e.g.
  -- settings = { codeexec = { timeout = 10, memoryMb = 2048, python = '.venv/bin/python' } }
  settings = { codeexec = {} },
  -- Sent with `initialize`; `before_init` below also copies `settings.codeexec` in here
  -- so the first run already uses them.
  init_options = { codeexec = {} },
  -- A server that dies (while starting or later) is reported with its command and a fix.
  on_exit = function(code, signal, client_id)
    local ok, codeexec = pcall(require, 'codeexec')
    if ok then
      codeexec.on_exit(code, signal, client_id)
    end
  end,
  before_init = function(params, config)
    local from_settings = vim.tbl_get(config.settings or {}, 'codeexec') or {}
    local options = params.initializationOptions
    options = type(options) == 'table' and vim.deepcopy(options) or {}
    options.codeexec = vim.tbl_deep_extend('force', {}, from_settings, options.codeexec or {})
    params.initializationOptions = options
  end,
}
