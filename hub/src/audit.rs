//! 审计工具: the auditor command line (`hub audit …`). Filled in step 3.
