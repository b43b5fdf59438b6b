"""Networks: WGAN-GP generator and critic, SRCNN, SRGAN family."""
