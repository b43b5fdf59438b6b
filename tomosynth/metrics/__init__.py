"""Image and distribution metrics: PSNR/SSIM (`image`), FID and friends, bone and morphology."""
